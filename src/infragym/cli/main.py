"""The ``infragym`` command: doctor, cleanup, check, demo.

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

from rich.console import Console
from rich.table import Table

from .. import __version__
from .._errors import InfraGymError
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


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(seed=args.seed, duration=args.duration, out_dir=args.out, console=console)


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

    dm = sub.add_parser("demo", help="3 hosts, load, a seeded nemesis, and the verdicts")
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
