"""Commands about one task: list, show, validate, grade a workspace, play in its sandbox."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from ._common import console, err_console, print_result, strict_json
from ._play import cmd_play as cmd_play  # noqa: PLC0414 (_parser imports it from here)


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
        print_result(result, label)
    return 2 if result.error else 0


def cmd_grade(args: argparse.Namespace) -> int:
    return _grade_and_print(args.task, args.workspace, args.seed, args.out, args.json, "workspace")
