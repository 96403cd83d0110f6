"""Commands about episodes: run an agent on seeds and summarise them, show a run's state,
report runs in HTML, export a run for a trainer, say what a Ray node offers."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from .._errors import ConfigError
from ._common import console, fresh_dir, new_out_dir, print_result, runs_home, strict_json


def cmd_run(args: argparse.Namespace) -> int:
    """Each seed is a full episode through the Env: sandbox, tool calls, submit, grading."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ..agent import agent_from_spec
    from ..grading import default_concurrency
    from ..remote import servers_from
    from ..runner import SERVE_SESSIONS, EpisodeOutcome, Summary, rollout_many
    from ..sandbox import run_interruptible
    from ..tasks import find_task

    ray = args.backend == "ray"
    if not ray and (args.address is not None or args.max_retries is not None):
        raise ConfigError("--address and --max-retries are for --backend ray")
    servers = servers_from(args.server) if args.server else []
    if servers and ray:
        raise ConfigError("--server plays on remote servers: it takes no --backend ray")
    task = find_task(args.task)
    if not servers:  # a remote server has the packages, not this machine
        task.require_ready()  # missing packages: the install command, before anything starts
    agent, base_url, compaction = args.agent, args.base_url, args.compaction
    agent_from_spec(task, agent, base_url, compaction)  # a bad spec fails before anything runs
    label = args.agent.replace(":", "-")
    out = (
        new_out_dir(args.out, resumable=True)
        if args.out
        else fresh_dir(runs_home() / task.name, label)
    )

    concurrency = args.concurrency or (
        None
        if ray
        else min(
            len(args.seeds),
            SERVE_SESSIONS * len(servers)
            if servers
            else default_concurrency(task.spec.grading_cores),
        )
    )
    at_once = (
        f"on Ray{f' at {args.address}' if args.address else ''}"
        + (f", {concurrency} at a time" if concurrency else "")
        if ray
        else f"{concurrency} at a time"
    )

    def run(
        on_done: Callable[[EpisodeOutcome], None] | None = None,
        on_progress: Callable[[int, str], None] | None = None,
    ) -> list[EpisodeOutcome]:
        try:
            return run_interruptible(
                rollout_many(
                    task.name if servers else args.task,
                    # sent whole to each Ray node: it holds the task, spec and URL only
                    lambda: agent_from_spec(task, agent, base_url, compaction),
                    args.seeds,
                    concurrency,
                    artifacts_dir=out,
                    on_done=on_done,
                    on_progress=on_progress,
                    backend=args.backend,
                    ray_address=args.address,
                    **({} if args.max_retries is None else {"max_retries": args.max_retries}),
                    server=servers or None,
                )
            )
        except BaseException:
            if args.out is None:  # the fresh default directory, if nothing was written there
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise

    if args.json:
        outcomes = run()
    else:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            job = bar.add_task(
                f"{task.name} {args.agent}, {len(args.seeds)} episode(s), {at_once}",
                total=len(args.seeds),
            )

            def done(o: EpisodeOutcome) -> None:
                bar.advance(job)
                what = (
                    f"reward {o.reward:.3f}"
                    if o.reward is not None
                    else f"error: {escape(o.error or '')}"
                )
                bar.console.print(f"seed {o.seed}: {what} ({o.wall_s:.0f} s)", soft_wrap=True)

            def done_or_kept(o: EpisodeOutcome) -> None:
                if not o.kept:
                    return done(o)
                bar.advance(job)  # finished by the killed run: done, so it has a reward
                bar.console.print(f"seed {o.seed}: reward {o.reward:.3f} (kept from the "
                                  "interrupted run)", soft_wrap=True)  # fmt: skip

            def lost(seed: int, message: str) -> None:
                if "attempt lost" in message:  # Ray: a node or worker died under it
                    bar.console.print(f"seed {seed}: {escape(message)}", soft_wrap=True)

            outcomes = run(done_or_kept, lost if ray else None)
    if args.json:
        print(json.dumps(run_json(task.name, args.agent, out, outcomes), indent=2, allow_nan=False))
    else:
        if len(outcomes) == 1 and outcomes[0].grade is not None:
            print_result(outcomes[0].grade, f"{label}")
        _print_summary(task.name, args.agent, outcomes, Summary.of(outcomes))
        console.print(f"episodes and trajectories.jsonl: {out}", soft_wrap=True, highlight=False)
    return 2 if any(o.error for o in outcomes) else 0


RUN_JSON_HELP = (
    'print one JSON object, for one seed as for many: {"task", "agent", "out", "episodes": '
    "[per seed, in the order given: the GradeResult (reward, breakdown, functional, timeline, "
    'history_path, artifacts_dir, ...) with agent, end_reason and error], "summary": '
    "{episodes, errors, mean, min, max}}; a platform failure has reward null"
)


def run_json(task: str, agent: str, out: Path, outcomes: list[Any]) -> object:
    """The one shape of ``run --json`` (see :data:`RUN_JSON_HELP`)."""
    from ..runner import Summary

    episodes = []
    for o in outcomes:
        data = (
            o.grade.model_dump(mode="json", exclude={"detail"})
            if o.grade
            else {"task": task, "seed": o.seed, "reward": None}
        )
        data.update(agent=agent, end_reason=o.end_reason, error=o.error)
        episodes.append(data)
    s = Summary.of(outcomes)
    summary = {
        "episodes": s.episodes,
        "errors": s.errors,
        "mean": s.mean,
        "min": s.min,
        "max": s.max,
    }
    return strict_json(
        {"task": task, "agent": agent, "out": str(out), "episodes": episodes, "summary": summary}
    )


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
            escape(o.error or ""),  # an error quotes code: [x] is not markup
        )
    console.print(t)
    if s.mean is not None:
        console.print(
            f"[bold]{s.episodes} episode(s): mean {s.mean:.3f}, min {s.min:.3f}, "
            f"max {s.max:.3f}[/]" + (f"; {s.errors} platform error(s)" if s.errors else "")
        )
    else:
        console.print(f"[red]{s.errors} episode(s), all failed on platform errors[/]")


def cmd_node_resources(args: argparse.Namespace) -> int:
    """The JSON ``ray start --resources`` takes, for a node that may host episodes."""
    from ..runner import EPISODE_RESOURCE, episode_slots

    print(json.dumps({EPISODE_RESOURCE: episode_slots(args.task)}))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """A run directory's state: its configuration, episodes per status, each episode."""
    from ..runner import STATUSES, read_run

    with read_run(args.run_dir) as store:
        config, counts, episodes = store.config(), store.counts(), store.episodes()
    if args.json:
        doc = {
            "run_dir": str(args.run_dir),
            "config": config,
            "counts": counts,
            "episodes": [e.summary() for e in episodes],
        }
        print(json.dumps(strict_json(doc), indent=2, allow_nan=False))
        return 0
    console.print(f"run {args.run_dir}", soft_wrap=True, highlight=False, markup=False)
    for key in ("task", "task_path", "agent", "model", "platform_version"):
        console.print(f"  {key}: {config.get(key)}", soft_wrap=True, highlight=False, markup=False)
    seeds = config.get("seeds", [])
    console.print(f"  seeds: {len(seeds)}", highlight=False)
    console.print(
        "  " + ", ".join(f"{counts[s]} {s}" for s in STATUSES), highlight=False, markup=False
    )
    t = Table()
    for col in ("seed", "status", "attempts", "reward", "end", "seconds", "error"):
        t.add_column(col, justify="left" if col in ("status", "error") else "right",
                     overflow="fold", no_wrap=col != "error")  # fmt: skip
    for e in episodes:
        t.add_row(
            str(e.seed),
            e.status,
            str(e.attempts),
            "-" if e.reward is None else f"{e.reward:.3f}",
            e.end_reason or "-",
            "-" if e.wall_s is None else f"{e.wall_s:.0f}",
            escape(e.error or ""),
        )
    console.print(t)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The HTML report of one or more run directories."""
    from ..report import write_report

    dest = write_report(
        args.run_dirs, args.out, pass_threshold=args.pass_threshold, bucket_s=args.bucket_s
    )
    size = dest.stat().st_size / 1e6
    console.print(
        f"wrote {dest} ({size:.1f} MB, self-contained): open it in a browser",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 0


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
