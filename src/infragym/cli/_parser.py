"""The argument parser of the ``infragym`` command: every subcommand, its options and help."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ._episodes import cmd_export, cmd_run
from ._platform import cmd_check, cmd_cleanup, cmd_demo, cmd_doctor
from ._tasks import cmd_grade, cmd_list, cmd_play, cmd_show, cmd_validate


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infragym",
        description="RL environments that reward production-grade infrastructure work.",
    )
    p.add_argument("--version", action="version", version=f"infragym {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser(
        "check",
        help="re-check a stored history offline",
        description="Re-check a stored history. A history a task's grader recorded is "
        "scored with that task's own checkers and rubric (the grade's reward), when the "
        "task's grader provides recheck(); otherwise, or with --generic, with the generic "
        "checkers (availability, latency, and for reads and writes the consistency checks).",
    )
    c.add_argument("history", type=Path, help="a history JSONL file")
    c.add_argument(
        "--task",
        default=None,
        help="the task whose grader to re-check with (default: the history's meta.task)",
    )
    c.add_argument(
        "--generic", action="store_true", help="the generic checkers, not the task's rubric"
    )
    c.add_argument(
        "--slo", type=float, default=0.99, help="availability SLO of --generic (default 0.99)"
    )
    c.add_argument(
        "--p99", type=float, default=None, help="p99 latency target of --generic, in seconds"
    )
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
