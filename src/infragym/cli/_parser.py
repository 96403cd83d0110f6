"""The argument parser of the ``infragym`` command: every subcommand, its options and help."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ._common import RUNS_HELP
from ._episodes import (
    RUN_JSON_HELP,
    cmd_export,
    cmd_node_resources,
    cmd_report,
    cmd_run,
    cmd_runs,
)
from ._judge import add_judge
from ._platform import cmd_check, cmd_cleanup, cmd_demo, cmd_doctor
from ._seeds import parse_seed, parse_seeds
from ._serve import add_serve
from ._tasks import cmd_grade, cmd_list, cmd_play, cmd_show, cmd_validate

SEED_HELP = "the seed: a whole number >= 0 (default 1); it fixes the faults and every random choice"


def positive_int(text: str) -> int:
    """A whole number >= 1 (episodes at once)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return n


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

    cl = sub.add_parser(
        "cleanup",
        help="remove what killed runs, and failed teardowns of running processes, left behind",
    )
    cl.add_argument(
        "--all", action="store_true", help="also remove runs a live process is still using"
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
    dm.add_argument("--seed", type=parse_seed, default=1, help=SEED_HELP)
    dm.add_argument(
        "--duration", type=float, default=16.0, help="seconds of load and faults (default 16)"
    )
    dm.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the history and host logs (default demo/ under {RUNS_HELP})",
    )
    dm.set_defaults(fn=cmd_demo)

    ls = sub.add_parser("list", help="the tasks this installation knows")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(fn=cmd_list)

    sh = sub.add_parser("show", help="a task's spec and instructions")
    sh.add_argument("task")
    sh.add_argument(
        "--seed",
        type=parse_seed,
        default=None,
        help="show the instructions of this seed's variant (default: the default variant)",
    )
    sh.set_defaults(fn=cmd_show)

    va = sub.add_parser(
        "validate",
        help="report every problem of a task folder at once (exit 1 if any)",
        description="Checks task.toml, instructions.md, workspace/ and solutions/; imports "
        "grader.py as grading does and checks it defines `async def grade(ctx)`; and, when the "
        "grader sets START_CMD (the command grading deploys, e.g. /bin/sh /srv/app/start.sh), "
        "that the starter workspace and every solution hold the files it runs.",
    )
    va.add_argument("task_dir", help="the task folder (or a known task's name)")
    va.add_argument(
        "--tiers",
        action="store_true",
        help="also grade, for real, every reference solution and probe (solutions/*) and the "
        "starter workspace on each seed, against the bands of task.toml [validation]; prints "
        "a table and exits 1 when a reward is outside its band or a tier spreads too much",
    )
    va.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        help="seeds for --tiers: N, A-B or a list (default: the task's [validation] seeds)",
    )
    va.add_argument(
        "--tier", action="append", dest="only", help="with --tiers: grade only this tier (repeat)"
    )
    va.add_argument(
        "--concurrency", type=positive_int, default=1, help="gradings at once (default 1)"
    )
    va.add_argument("--json", action="store_true", help="with --tiers: the report as JSON")
    va.set_defaults(fn=cmd_validate)

    rn = sub.add_parser("run", help="run an agent on a task and grade it")
    rn.add_argument("task")
    rn.add_argument(
        "--agent",
        default="reference:robust",
        help="reference:TIER (a reference solution), probe:NAME (an agent probe of the "
        "catalogue, e.g. probe:outlive-agent), noop (the starter files) or openai:MODEL "
        "(a model behind an OpenAI-compatible server)",
    )
    rn.add_argument(
        "--base-url",
        default=None,
        help="with openai:MODEL: the server's URL, e.g. http://127.0.0.1:8000/v1 "
        "(default $OPENAI_BASE_URL; the key comes from $OPENAI_API_KEY)",
    )
    rn.add_argument(
        "--compaction",
        action="store_true",
        help="with openai:MODEL: past its context budget the model summarises the episode "
        "and carries on from the summary (for episodes of hundreds of turns)",
    )
    rn.add_argument(
        "--seed",
        "--seeds",
        dest="seeds",
        type=parse_seeds,
        default=[1],
        help="a seed N, an inclusive range A-B or a list A,B,C (or 1-4,9); seeds are "
        "whole numbers >= 0, each at most once, at most 10000 (default 1)",
    )
    rn.add_argument(
        "--server",
        default=None,
        metavar="URL[,URL...]",
        help="play the episodes on remote `infragym serve` servers (e.g. "
        "http://gpu-free-box:8000; several, comma-separated, share the episodes): the task "
        "must be one they serve, the grading happens there",
    )
    rn.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        help="episodes at once (default: as many gradings as fit the machine, from the "
        "task's [grading] cores; more may run, their gradings then wait for room)",
    )
    rn.add_argument(
        "--out",
        type=Path,
        default=None,
        help="a new or empty directory for the run: its store (run.sqlite), the episodes' "
        "artifacts and trajectories.jsonl; a directory holding a run of the same task, "
        "agent, seeds and options resumes it (finished episodes kept, interrupted and "
        "platform-failed ones rerun), one of another run is refused "
        f"(default: a fresh TASK/AGENT-TIME directory under {RUNS_HELP})",
    )
    rn.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local: the episodes run in this process; ray: each is a Ray task on a node "
        "of a Ray cluster that advertises the infragym_episode resource (pip install "
        "'infragym[ray]')",
    )
    rn.add_argument(
        "--address",
        default=None,
        help="with --backend ray: the cluster's address (HOST:PORT, or auto for the one "
        "`ray start` made on this machine; default $RAY_ADDRESS, else a local cluster "
        "started for the run)",
    )
    rn.add_argument(
        "--max-retries",
        type=int,
        default=None,
        help="with --backend ray: how often an episode lost with its node or worker is "
        "tried again before it is recorded as a platform failure (default 2)",
    )
    rn.add_argument("--json", action="store_true", help=RUN_JSON_HELP)
    rn.set_defaults(fn=cmd_run)

    nr = sub.add_parser(
        "node-resources",
        help="the Ray resources this machine advertises to host episodes (for ray start)",
        description="Print the JSON for `ray start --resources`: this machine's slots of "
        "infragym_episode, as many episodes as gradings fit its cores. Start a node that "
        "may host episodes with: ray start --address HEAD:6379 "
        '--resources="$(infragym node-resources)"',
    )
    nr.add_argument(
        "--task",
        default=None,
        help="size the slots for this task's gradings (default: the costliest known task's)",
    )
    nr.set_defaults(fn=cmd_node_resources)

    rs = sub.add_parser("runs", help="a run directory's state: configuration and episodes")
    rs.add_argument("run_dir", type=Path, help="a directory given to `run --out`")
    rs.add_argument(
        "--json",
        action="store_true",
        help='one JSON object: {"run_dir", "config", "counts" (per status), "episodes": '
        "[{seed, status, attempts, reward, functional, breakdown, end_reason, error, "
        "started_at, finished_at, wall_s, artifacts_dir}]}",
    )
    rs.set_defaults(fn=cmd_runs)

    rp = sub.add_parser(
        "report",
        help="one self-contained HTML report of runs, side by side",
        description="Writes one HTML file that opens with no network (plotly.js inside): per "
        "task, each run's mean reward with a 95 % bootstrap interval, its pass rate and its "
        "mean score per criterion, and the paired per-seed differences between runs (each "
        "minus the first run given of its task); per episode, its criteria, its fault "
        "timeline (fault windows over availability and latency, from the grading's "
        "history) and its transcript. Platform failures are shown as such, never as 0. "
        "Needs plotly: pip install 'infragym[report]'.",
    )
    rp.add_argument(
        "run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="directories given to `run --out`"
    )
    rp.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("report.html"),
        help="the HTML file to write (default ./report.html)",
    )
    rp.add_argument(
        "--pass-threshold",
        type=float,
        default=None,
        help="an episode passes when its reward is at least this (default: the lower bound "
        "of the task's robust band in its task.toml, else 1.0)",
    )
    rp.add_argument(
        "--bucket",
        type=float,
        default=0.5,
        dest="bucket_s",
        help="seconds per bucket of the fault timelines (default 0.5)",
    )
    rp.set_defaults(fn=cmd_report)

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
    pl.add_argument("--seed", type=parse_seed, default=1, help=SEED_HELP)
    pl.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"artifacts directory (default TASK/play under {RUNS_HELP})",
    )
    pl.set_defaults(fn=cmd_play)

    gr = sub.add_parser("grade", help="grade a workspace directory for a task")
    gr.add_argument("task")
    gr.add_argument("--workspace", type=Path, required=True)
    gr.add_argument("--seed", type=parse_seed, default=1, help=SEED_HELP)
    gr.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"artifacts directory (default: a fresh TASK/workspace-seedN-TIME under {RUNS_HELP})",
    )
    gr.add_argument("--json", action="store_true")
    gr.set_defaults(fn=cmd_grade)

    add_serve(sub)
    add_judge(sub)
    return p
