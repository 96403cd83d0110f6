"""Commands about the platform itself: check a stored history, demo, doctor, cleanup."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from .._errors import ConfigError
from ..checkers import (
    Availability,
    Checker,
    Latency,
    Linearizable,
    LostWrites,
    StaleReads,
    Verdict,
    check_all,
)
from ..grading import RecheckFn
from ..history import History
from ..report import verdict_table
from ._common import console, readiness, reward_table, runs_home, strict_json


def default_checkers(history: History, slo: float, p99: float | None) -> list[Checker]:
    """The checkers that apply to a history: KV checks only if it holds reads and writes."""
    fs = {e.f for e in history.ops}
    checkers: list[Checker] = [Availability(slo=slo), Latency(p99=p99)]
    if {"read", "write"} <= fs:
        checkers += [LostWrites(), StaleReads(), Linearizable(time_budget_s=20.0)]
    return checkers


def cmd_check(args: argparse.Namespace) -> int:
    history = History.read_jsonl(args.history)
    recheck = None
    if not args.generic:
        try:
            recheck = _task_recheck(args.task or history.meta.get("task"))
        except ConfigError:
            if args.task:
                raise
            # the task that recorded it is not installed here: the generic checkers
    if recheck is not None:
        return _check_as_graded(args, history, *recheck)
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


def _task_recheck(name: object) -> tuple[str, RecheckFn] | None:
    """The named task's own re-check, if the task is known and its grader has one."""
    if not isinstance(name, str) or not name:
        return None
    from ..grading import load_recheck
    from ..tasks import find_task

    fn = load_recheck(find_task(name))
    return None if fn is None else (name, fn)


def _check_as_graded(args: argparse.Namespace, history: History, task: str, fn: RecheckFn) -> int:
    """Score the history with the task's checkers and rubric: the grade's own reward."""
    reward = fn(history)
    if args.json:
        out = {"task": task, **reward.model_dump(mode="json")}
        print(json.dumps(strict_json(out), indent=2, default=str, allow_nan=False))
    else:
        ops = len(history.operations())
        console.print(
            f"{args.history}: {ops} operations, {len(history.faults)} fault events, "
            f"re-checked with the checkers and rubric of task {task}",
            soft_wrap=True,
        )
        console.print(reward_table(reward, f"{task}: offline re-check"))
        console.print(
            f"[bold]reward {reward.reward:.3f}[/] (uncapped {reward.uncapped:.3f})"
            + (f", capped by {reward.capped_by}" if reward.capped_by else "")
        )
    return 1 if any(c.verdict is Verdict.FAIL for c in reward.breakdown) else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..grading import Admission, default_concurrency
    from ..nemesis import fault_support, probe
    from ..tasks import list_tasks

    caps = probe()
    support = fault_support()
    tasks = list_tasks()
    missing = {t.name: t.missing_packages() for t in tasks}
    admission = Admission()
    try:
        ledger: dict[str, Any] = admission.status()
    except OSError as exc:  # e.g. not root: the state directory is not writable
        ledger = {"running": [], "waiting": [], "error": f"cannot read the ledger: {exc}"}
    room = admission.capacity
    at_once = {t.name: default_concurrency(t.spec.grading_cores, room) for t in tasks}
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
                    "tasks": {
                        t.name: {
                            "ready": not missing[t.name],
                            "missing": list(missing[t.name]),
                            "grading_cores": t.spec.grading_cores,
                            "default_concurrency": at_once[t.name],
                        }
                        for t in tasks
                    },
                    "grading": {"cores": room.cores, "source": room.source, **ledger},
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
        tt = Table(title="tasks (their Debian packages; what one grading costs)")
        tt.add_column("task")
        tt.add_column("", overflow="fold")
        tt.add_column("grading")
        for task in tasks:
            tt.add_row(
                task.name,
                readiness(missing[task.name]),
                f"{task.spec.grading_cores:g} cores: {at_once[task.name]} at once by default",
            )
        console.print(tt)
        console.print(
            f"gradings may use {room.cores:g} cores ({room.source}; set "
            f"INFRAGYM_GRADING_CORES to change it): {len(ledger['running'])} running, "
            f"{len(ledger['waiting'])} waiting for room"
        )
    ok = all(c.supported for c in support.values()) and not any(missing.values())
    return 0 if ok else 1


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
    out = args.out or runs_home() / "demo"
    if args.core:
        from ..demo import run_demo

        return run_demo(
            seed=args.seed, duration=args.duration, out_dir=out / "core", console=console
        )
    from ..demo import run_task_demo

    return run_task_demo(seed=args.seed, out_dir=out, console=console)
