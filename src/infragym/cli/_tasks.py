"""Commands about one task: list, show, validate, grade a workspace, play in its sandbox."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from .._errors import ConfigError
from ..testing import TierReport
from ._common import (
    console,
    err_console,
    fresh_dir,
    print_result,
    readiness,
    runs_home,
    strict_json,
)
from ._play import cmd_play as cmd_play  # noqa: PLC0414 (_parser imports it from here)

if TYPE_CHECKING:
    from ..tasks import TaskSpec


def role_counts(spec: TaskSpec) -> dict[str, list[int]]:
    """Each role's host counts across the variants, smallest to largest ({} without roles)."""
    return {
        r.name: sorted({int(n) for n in r.choices("hosts", spec.variants)})
        for r in spec.topology.roles
    }


def hosts_column(spec: TaskSpec) -> str:
    """``4``, or with roles ``lb 2-3, app 2-3``."""
    counts = role_counts(spec)
    if not counts:
        return str(spec.topology.hosts)
    shown = (f"{c[0]}" if len(c) == 1 else f"{c[0]}-{c[-1]}" for c in counts.values())
    return ", ".join(f"{r} {n}" for r, n in zip(counts, shown, strict=True))


def cmd_list(args: argparse.Namespace) -> int:
    from ..tasks import list_tasks

    tasks = list_tasks()
    missing = {t.name: t.missing_packages() for t in tasks}
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "summary": t.spec.summary,
                        "tags": list(t.spec.tags),
                        "hosts": t.spec.topology.hosts,
                        "roles": role_counts(t.spec),
                        "variants": t.spec.variant_count,
                        "requires": {"apt": list(t.spec.apt)},
                        "ready": not missing[t.name],
                        "missing": list(missing[t.name]),
                    }
                    for t in tasks
                ],
                indent=2,
            )
        )
        return 0
    t = Table(title="tasks")
    for col in ("name", "hosts", "ready", "tags", "summary"):
        t.add_column(col, overflow="fold")
    for task in tasks:
        t.add_row(
            task.name,
            hosts_column(task.spec),
            readiness(missing[task.name]),
            ", ".join(task.spec.tags),
            task.spec.summary,
        )
    console.print(t)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from rich.markdown import Markdown

    from ..tasks import find_task

    task = find_task(args.task)
    s = task.spec
    variant = s.variant(args.seed)
    instructions = task.render_instructions(variant)
    console.print(f"[bold]{s.name}[/] v{s.version}: {s.summary}", highlight=False)
    console.print(
        f"tags: {', '.join(s.tags)}; hosts {len(variant.host_names)} (dev "
        f"{len(variant.dev_host_names)}); limits: {s.limits.max_steps} steps, "
        f"{s.limits.agent_wall_s:.0f} s agent time, {s.limits.command_timeout_s:.0f} s "
        f"per command; grading budget {s.grading_budget_s:.0f} s; reference tiers: "
        f"{', '.join(task.solutions())}"
    )
    if s.apt:
        console.print(
            f"requires (apt): {', '.join(s.apt)}: {readiness(task.missing_packages())}",
            highlight=False,
        )
    hosts = ", ".join(variant.host_names)
    if variant.roles:
        hosts = "; ".join(f"{r} {', '.join(names)}" for r, names in variant.roles.items())
    if not s.variants:
        console.print(f"variants: none (one variant); hosts {hosts}", highlight=False)
    else:
        keys = "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in s.variants.items())
        which = "the default variant" if args.seed is None else f"the variant of seed {args.seed}"
        console.print(f"variants: {s.variant_count} distinct ({keys})", highlight=False)
        console.print(f"{which}: {variant.describe()}; hosts {hosts}", highlight=False)
    console.print(Markdown(instructions))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from ..tasks import find_task, validate_task

    path = Path(args.task_dir)
    if not path.is_dir():
        try:
            path = find_task(args.task_dir).path
        except ConfigError:
            pass  # validate_task says the folder is missing
    problems = validate_task(path)
    if problems:
        err_console.print(
            f"{args.task_dir}: {len(problems)} problem(s)", soft_wrap=True, highlight=False
        )
        for p in problems:
            err_console.print(f"  - {p}", soft_wrap=True, highlight=False)
        return 1
    if not args.tiers:
        console.print(f"{args.task_dir}: valid", soft_wrap=True, highlight=False)
        return 0
    return _validate_tiers(path, args)


def _tier_table(report: TierReport) -> Table:
    t = Table(title=f"{report.task}: every tier against its band")
    t.add_column("tier")
    t.add_column("band")
    for seed in report.seeds:
        t.add_column(f"seed {seed}", justify="right")
    t.add_column("spread", justify="right")
    t.add_column("")
    for row in report.rows:
        cells = []
        for seed in report.seeds:
            r = row.rewards.get(seed)
            if r is None:
                cells.append("[yellow]error[/]")
            else:
                cells.append(f"{r:.3f}" if r in row.band else f"[red]{r:.3f}[/]")
        verdict = "[red]out of band[/]" if row.problems else "[green]ok[/]"
        t.add_row(row.tier, str(row.band), *cells, f"{row.spread:.3f}", verdict)
    return t


def _validate_tiers(path: Path, args: argparse.Namespace) -> int:
    from ..grading import GradeResult
    from ..sandbox import run_interruptible
    from ..tasks import load_task
    from ..testing import validate_tiers

    task = load_task(path)

    def done(tier: str, seed: int, r: GradeResult) -> None:
        shown = "error" if r.reward is None else f"{r.reward:.3f}"
        err_console.print(f"  {tier} seed {seed}: {shown}", highlight=False)

    report = run_interruptible(
        validate_tiers(
            task,
            args.seeds,
            args.only,
            concurrency=args.concurrency,
            on_result=None if args.json else done,
        )
    )
    variants = {s: task.spec.variant(s) for s in report.seeds}
    if args.json:
        data = {**report.to_json(), "variants": {str(s): v.to_dict() for s, v in variants.items()}}
        print(json.dumps(strict_json(data), indent=2))
    else:
        console.print(_tier_table(report))
        if task.spec.variants:  # which variant each seed drew
            for seed, v in variants.items():
                console.print(f"seed {seed}: {v.describe()}", highlight=False)
        for p in report.problems:
            err_console.print(f"[red]out of band:[/] {p}", soft_wrap=True, highlight=False)
        if report.ok:
            console.print(f"{task.name}: every tier in its band", highlight=False)
    return 0 if report.ok else 1


def _grade_and_print(
    task_name: str, workspace: Path, seed: int, out: Path | None, as_json: bool, label: str
) -> int:
    from ..grading import grade_workspace
    from ..sandbox import run_interruptible
    from ..tasks import find_task

    task = find_task(task_name)
    task.require_ready()
    artifacts = out or fresh_dir(runs_home() / task.name, f"{label}-seed{seed}")
    if as_json:
        result = run_interruptible(grade_workspace(task, workspace, seed, artifacts))
    else:
        with console.status(f"grading {task.name} ({label}, seed {seed})...") as status:
            result = run_interruptible(
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
