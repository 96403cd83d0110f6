"""The ``infragym`` command: list, show, validate, run, grade, check, demo, doctor, cleanup.

The CLI only calls the public API. Every platform error is shown as one line saying what
to do, with exit code 2; a failed check is exit code 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .. import __version__
from .._errors import ConfigError, InfraGymError
from ..checkers import (
    Availability,
    Checker,
    CheckResult,
    Latency,
    Linearizable,
    LostWrites,
    StaleReads,
    Verdict,
    check_all,
)
from ..env import ToolCall
from ..grading import GradeResult
from ..history import History

console = Console()
err_console = Console(stderr=True)

VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.UNKNOWN: "yellow"}


def verdict_table(results: dict[str, CheckResult], title: str = "checkers") -> Table:
    t = Table(title=title, show_lines=False)
    t.add_column("checker")
    t.add_column("verdict")
    t.add_column("score", justify="right")
    t.add_column("explanation", overflow="fold")
    for name, r in results.items():
        style = VERDICT_STYLE[r.verdict]
        t.add_row(name, f"[{style}]{r.verdict.value}[/]", f"{r.score:.3f}", r.explanation)
    return t


def default_checkers(history: History, slo: float, p99: float | None) -> list[Checker]:
    """The checkers that apply to a history: KV checks only if it holds reads and writes."""
    fs = {e.f for e in history.ops}
    checkers: list[Checker] = [Availability(slo=slo), Latency(p99=p99)]
    if {"read", "write"} <= fs:
        checkers += [LostWrites(), StaleReads(), Linearizable(time_budget_s=20.0)]
    return checkers


def strict_json(value: object) -> object:
    """Non-finite floats as strings ("inf"), so strict JSON parsers accept the output."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def cmd_check(args: argparse.Namespace) -> int:
    history = History.read_jsonl(args.history)
    results = check_all(default_checkers(history, args.slo, args.p99), history)
    if args.json:
        out = {
            n: {
                "verdict": r.verdict.value,
                "score": r.score,
                "explanation": r.explanation,
                "metrics": dict(r.metrics),
            }
            for n, r in results.items()
        }
        print(json.dumps(strict_json(out), indent=2, default=str, allow_nan=False))
    else:
        ops = len(history.operations())
        console.print(f"{args.history}: {ops} operations, {len(history.faults)} fault events")
        console.print(verdict_table(results))
    return 1 if any(r.verdict is Verdict.FAIL for r in results.values()) else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..nemesis import fault_support, probe

    caps = probe()
    support = fault_support()
    if args.json:
        print(
            json.dumps(
                {
                    "capabilities": {
                        c.name: {"supported": c.supported, "reason": c.reason} for c in caps
                    },
                    "faults": {
                        k: {"supported": c.supported, "reason": c.reason}
                        for k, c in support.items()
                    },
                },
                indent=2,
            )
        )
    else:
        t = Table(title="this machine")
        t.add_column("capability")
        t.add_column("")
        t.add_column("detail", overflow="fold")
        for c in caps:
            t.add_row(c.name, "[green]yes[/]" if c.supported else "[red]no[/]", c.reason)
        console.print(t)
        f = Table(title="faults")
        f.add_column("fault")
        f.add_column("")
        f.add_column("needs / why not", overflow="fold")
        for k, c in support.items():
            f.add_row(k, "[green]supported[/]" if c.supported else "[red]unsupported[/]", c.reason)
        console.print(f)
    return 0 if all(c.supported for c in support.values()) else 1


def cmd_cleanup(args: argparse.Namespace) -> int:
    from ..sandbox import cleanup

    report = cleanup(everything=args.all)
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
    else:
        console.print(report.summary())
        for what in ("namespaces", "links", "mounts", "directories"):
            items = getattr(report, what)
            if items:
                console.print(f"  {what}: {', '.join(items)}")
    return 1 if report.errors else 0


def _grade_and_print(
    task_name: str, workspace: Path, seed: int, out: Path | None, as_json: bool, label: str
) -> int:
    import asyncio

    from ..grading import grade_workspace
    from ..tasks import find_task

    task = find_task(task_name)
    artifacts = out or Path("runs") / task.name / f"{label}-seed{seed}"
    if as_json:
        result = asyncio.run(grade_workspace(task, workspace, seed, artifacts))
    else:
        with console.status(f"grading {task.name} ({label}, seed {seed})...") as status:
            result = asyncio.run(
                grade_workspace(
                    task,
                    workspace,
                    seed,
                    artifacts,
                    progress=lambda msg: status.update(
                        f"{task.name} ({label}, seed {seed}): {msg}"
                    ),
                )
            )
    if as_json:
        data = result.model_dump(mode="json", exclude={"detail"})
        print(json.dumps(strict_json(data), indent=2, allow_nan=False))
    else:
        _print_result(result, label)
    return 2 if result.error else 0


def _print_result(result: GradeResult, label: str) -> None:
    if result.error:
        err_console.print(
            f"[red]grading failed (platform error, no reward):[/] {result.error}", soft_wrap=True
        )
        return
    t = Table(title=f"{result.task} — {label}, seed {result.seed}")
    t.add_column("criterion")
    t.add_column("verdict")
    t.add_column("score", justify="right")
    t.add_column("weight", justify="right")
    t.add_column("explanation", overflow="fold")
    if result.detail is not None:
        for c in result.detail.breakdown:
            style = VERDICT_STYLE.get(Verdict(c.verdict), "white")
            gate = " (gate)" if c.gate else ""
            t.add_row(
                c.name + gate,
                f"[{style}]{c.verdict}[/]",
                f"{c.score:.3f}",
                f"{c.weight:g}",
                c.explanation,
            )
    console.print(t)
    console.print(
        f"[bold]reward {result.reward:.3f}[/]   functional tests alone: "
        f"{result.functional:.3f}   grading took "
        f"{result.timings.get('total_s', 0):.1f} s   artifacts: {result.artifacts_dir}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Each seed is a full episode through the Env: sandbox, tool calls, submit, grading."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ..agent import agent_from_spec
    from ..runner import EpisodeOutcome, Summary, rollout_many
    from ..tasks import find_task

    task = find_task(args.task)
    agent_from_spec(task, args.agent, args.base_url)  # a bad spec fails before anything runs
    label = args.agent.replace(":", "-")
    out = args.out or Path("runs") / task.name / label
    outcomes: list[EpisodeOutcome]
    if args.json:
        outcomes = asyncio.run(
            rollout_many(
                args.task,
                lambda: agent_from_spec(task, args.agent, args.base_url),
                args.seeds,
                args.concurrency,
                artifacts_dir=out,
            )
        )
    else:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            job = bar.add_task(
                f"{task.name} {args.agent}, {len(args.seeds)} episode(s), "
                f"{args.concurrency} at a time",
                total=len(args.seeds),
            )

            def done(o: EpisodeOutcome) -> None:
                bar.advance(job)
                what = f"reward {o.reward:.3f}" if o.reward is not None else f"error: {o.error}"
                bar.console.print(f"seed {o.seed}: {what} ({o.wall_s:.0f} s)", soft_wrap=True)

            outcomes = asyncio.run(
                rollout_many(
                    args.task,
                    lambda: agent_from_spec(task, args.agent, args.base_url),
                    args.seeds,
                    args.concurrency,
                    artifacts_dir=out,
                    on_done=done,
                )
            )
    if args.json:
        rows = []
        for o in outcomes:
            data = (
                o.grade.model_dump(mode="json", exclude={"detail"})
                if o.grade
                else {"task": task.name, "seed": o.seed, "reward": None}
            )
            data.update(agent=args.agent, end_reason=o.end_reason, error=o.error)
            rows.append(strict_json(data))
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2, allow_nan=False))
    else:
        if len(outcomes) == 1 and outcomes[0].grade is not None:
            _print_result(outcomes[0].grade, f"{label}")
        _print_summary(task.name, args.agent, outcomes, Summary.of(outcomes))
    return 2 if any(o.error for o in outcomes) else 0


def _print_summary(task: str, agent: str, outcomes: list[Any], s: Any) -> None:
    t = Table(title=f"{task}: {agent}")
    for col in ("seed", "reward", "functional", "end", "seconds", "error"):
        t.add_column(col, justify="right" if col != "error" else "left", overflow="fold")
    for o in outcomes:
        g = o.grade
        t.add_row(
            str(o.seed),
            "-" if o.reward is None else f"{o.reward:.3f}",
            "-" if g is None or g.functional is None else f"{g.functional:.3f}",
            o.end_reason or "-",
            f"{o.wall_s:.0f}",
            o.error or "",
        )
    console.print(t)
    if s.mean is not None:
        console.print(
            f"[bold]{s.episodes} episode(s): mean {s.mean:.3f}, min {s.min:.3f}, "
            f"max {s.max:.3f}[/]" + (f"; {s.errors} platform error(s)" if s.errors else "")
        )
    else:
        console.print(f"[red]{s.errors} episode(s), all failed on platform errors[/]")


def cmd_export(args: argparse.Namespace) -> int:
    from ..runner import export_hf_dataset, export_openai_jsonl

    # RUN_DIR may also be a trajectories.jsonl file: the default output goes beside it
    base: Path = args.run_dir.parent if args.run_dir.is_file() else args.run_dir
    if args.format == "hf-dataset":
        out = args.out or base / "export.hf"
        n = export_hf_dataset(args.run_dir, out)
        console.print(f"wrote {n} episode(s) to {out}", markup=False, soft_wrap=True)
        console.print(
            f"load it with datasets.load_dataset({str(out.resolve())!r}, split='train')",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 0
    out = args.out or base / "export.openai.jsonl"
    n = export_openai_jsonl(args.run_dir, out)
    console.print(f"wrote {n} episode(s) to {out}", markup=False, soft_wrap=True)
    return 0


PLAY_HELP = """every line runs as the agent's `bash` tool, in the agent's sandbox; also:
  :host HOST COMMAND   run COMMAND on a dev host (host_bash)
  :bg HOST COMMAND     start COMMAND in the background on a dev host
  :read PATH           read_file PATH
  :submit              end the episode and grade the workspace
  :quit                end the episode without grading"""


def _play_action(line: str) -> ToolCall | None:
    from ..env import ToolCall

    word = line.split(None, 1)[0] if line.strip() else ""
    if word in (":host", ":bg"):
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise ConfigError(f"usage: {word} HOST COMMAND")
        return ToolCall(
            "host_bash", {"host": parts[1], "command": parts[2], "background": parts[0] == ":bg"}
        )
    if word == ":read":
        return ToolCall("read_file", {"path": line[len(":read") :].strip()})
    if line.strip() == ":submit":
        return ToolCall("submit", {})
    if line.strip() in (":quit", ":q"):
        return None
    return ToolCall("bash", {"command": line})


def cmd_play(args: argparse.Namespace) -> int:
    """An interactive session in the agent's sandbox, for task authors."""
    from ..env import SyncEnv, make

    env = SyncEnv(make(args.task, artifacts_dir=args.out))
    try:
        obs = env.reset(seed=args.seed)
        console.print(
            f"[bold]{obs.task}[/] seed {obs.seed}; dev hosts: "
            f"{', '.join(obs.dev_hosts) or 'none'}; tools: "
            f"{', '.join(t.name for t in obs.tools)}"
        )
        console.print(PLAY_HELP, highlight=False)
        while True:
            try:
                line = input("agent$ ") if sys.stdin.isatty() else sys.stdin.readline()
            except EOFError:
                line = ""
            if not line:
                console.print("end of input: quitting without grading")
                return 0
            line = line.rstrip("\n")
            if not line.strip():
                continue
            try:
                action = _play_action(line)
            except ConfigError as exc:
                err_console.print(str(exc))
                continue
            if action is None:
                return 0
            result = env.step(action)
            print(result.observation.content, flush=True)
            if result.terminated or result.truncated:
                grade = result.info.get("grade")
                if grade is not None:
                    _print_result(grade, "play")
                return 0
    finally:
        env.close()


def cmd_grade(args: argparse.Namespace) -> int:
    return _grade_and_print(args.task, args.workspace, args.seed, args.out, args.json, "workspace")


def cmd_list(args: argparse.Namespace) -> int:
    from ..tasks import list_tasks

    tasks = list_tasks()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "summary": t.spec.summary,
                        "tags": list(t.spec.tags),
                        "hosts": t.spec.topology.hosts,
                    }
                    for t in tasks
                ],
                indent=2,
            )
        )
        return 0
    t = Table(title="tasks")
    for col in ("name", "hosts", "tags", "summary"):
        t.add_column(col, overflow="fold")
    for task in tasks:
        t.add_row(
            task.name, str(task.spec.topology.hosts), ", ".join(task.spec.tags), task.spec.summary
        )
    console.print(t)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from rich.markdown import Markdown

    from ..tasks import find_task

    task = find_task(args.task)
    s = task.spec
    console.print(f"[bold]{s.name}[/] v{s.version}: {s.summary}")
    console.print(
        f"tags: {', '.join(s.tags)}; hosts {s.topology.hosts} (dev "
        f"{s.topology.dev_hosts}); limits: {s.limits.max_steps} steps, "
        f"{s.limits.agent_wall_s:.0f} s agent time, {s.limits.command_timeout_s:.0f} s "
        f"per command; grading budget {s.grading_budget_s:.0f} s; reference tiers: "
        f"{', '.join(task.solutions())}"
    )
    console.print(Markdown(task.instructions))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from ..tasks import validate_layout

    problems = validate_layout(args.task_dir)
    if not problems:
        console.print(f"{args.task_dir}: valid")
        return 0
    err_console.print(f"{args.task_dir}: {len(problems)} problem(s)")
    for p in problems:
        err_console.print(f"  - {p}", soft_wrap=True, highlight=False)
    return 1


def parse_seeds(text: str) -> list[int]:
    """``3``, ``1-8`` or ``1,2,5``."""
    out: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: use N, A-B or A,B,C") from None
    if not out or len(out) > 10_000:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: between 1 and 10000 seeds")
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    if args.core:
        from ..demo import run_demo

        return run_demo(
            seed=args.seed, duration=args.duration, out_dir=args.out / "core", console=console
        )
    from ..demo import run_task_demo

    return run_task_demo(seed=args.seed, out_dir=args.out, console=console)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infragym",
        description="RL environments that reward production-grade infrastructure work.",
    )
    p.add_argument("--version", action="version", version=f"infragym {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check", help="re-check a stored history offline")
    c.add_argument("history", type=Path, help="a history JSONL file")
    c.add_argument("--slo", type=float, default=0.99, help="availability SLO (default 0.99)")
    c.add_argument("--p99", type=float, default=None, help="p99 latency target in seconds")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(fn=cmd_check)

    d = sub.add_parser("doctor", help="which faults this machine supports, and why not")
    d.add_argument("--json", action="store_true")
    d.set_defaults(fn=cmd_doctor)

    cl = sub.add_parser("cleanup", help="remove what killed runs left behind")
    cl.add_argument(
        "--all", action="store_true", help="also remove runs whose owner is still alive"
    )
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(fn=cmd_cleanup)

    dm = sub.add_parser(
        "demo", help="kv-replicated: the naive and the robust reference side by side"
    )
    dm.add_argument(
        "--core",
        action="store_true",
        help="the platform-core demo instead: a 3-host service under a seeded "
        "nemesis, its fault timeline, availability per window and verdicts",
    )
    dm.add_argument("--seed", type=int, default=1)
    dm.add_argument(
        "--duration", type=float, default=16.0, help="seconds of load and faults (default 16)"
    )
    dm.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        help="where to write the history and host logs (default runs/demo)",
    )
    dm.set_defaults(fn=cmd_demo)

    ls = sub.add_parser("list", help="the tasks this installation knows")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(fn=cmd_list)

    sh = sub.add_parser("show", help="a task's spec and instructions")
    sh.add_argument("task")
    sh.set_defaults(fn=cmd_show)

    va = sub.add_parser("validate", help="report every problem of a task folder")
    va.add_argument("task_dir", type=Path)
    va.set_defaults(fn=cmd_validate)

    rn = sub.add_parser("run", help="run an agent on a task and grade it")
    rn.add_argument("task")
    rn.add_argument(
        "--agent",
        default="reference:robust",
        help="reference:TIER (a reference solution), noop (the starter files) or "
        "openai:MODEL (a model behind an OpenAI-compatible server)",
    )
    rn.add_argument(
        "--base-url",
        default=None,
        help="with openai:MODEL: the server's URL, e.g. http://127.0.0.1:8000/v1 "
        "(default $OPENAI_BASE_URL; the key comes from $OPENAI_API_KEY)",
    )
    rn.add_argument(
        "--seed",
        "--seeds",
        dest="seeds",
        type=parse_seeds,
        default=[1],
        help="a seed, a range A-B or a list A,B,C (default 1)",
    )
    rn.add_argument("--concurrency", type=int, default=1, help="episodes at once (default 1)")
    rn.add_argument("--out", type=Path, default=None, help="artifacts directory")
    rn.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON (reward, breakdown, functional, ...)",
    )
    rn.set_defaults(fn=cmd_run)

    ex = sub.add_parser("export", help="episodes of a run directory, for a trainer")
    ex.add_argument("run_dir", type=Path, help="a directory given to `run --out`")
    ex.add_argument(
        "--format",
        choices=["openai-jsonl", "hf-dataset"],
        default="openai-jsonl",
        help="openai-jsonl: one {messages, tools, reward} line per graded episode; "
        "hf-dataset: a directory that datasets.load_dataset(DIR) loads",
    )
    ex.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file, or directory for hf-dataset "
        "(default RUN_DIR/export.openai.jsonl or RUN_DIR/export.hf)",
    )
    ex.set_defaults(fn=cmd_export)

    pl = sub.add_parser("play", help="an interactive shell in the agent's sandbox")
    pl.add_argument("task")
    pl.add_argument("--seed", type=int, default=1)
    pl.add_argument("--out", type=Path, default=None, help="artifacts directory")
    pl.set_defaults(fn=cmd_play)

    gr = sub.add_parser("grade", help="grade a workspace directory for a task")
    gr.add_argument("task")
    gr.add_argument("--workspace", type=Path, required=True)
    gr.add_argument("--seed", type=int, default=1)
    gr.add_argument("--out", type=Path, default=None, help="artifacts directory")
    gr.add_argument("--json", action="store_true")
    gr.set_defaults(fn=cmd_grade)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.fn(args)
        return rc
    except InfraGymError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted; everything this run created was removed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
