"""What every command shares: the consoles, strict JSON and the printing of verdicts and grades."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from ..checkers import Verdict
from ..grading import GradeResult
from ..report import VERDICT_STYLE

console = Console()
err_console = Console(stderr=True)


def strict_json(value: object) -> object:
    """Non-finite floats as strings ("inf"), so strict JSON parsers accept the output."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def print_result(result: GradeResult, label: str) -> None:
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
