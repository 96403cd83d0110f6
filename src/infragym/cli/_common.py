"""What every command shares: the consoles, strict JSON and the printing of verdicts and grades."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from ..checkers import CheckResult, Verdict
from ..grading import GradeResult
from ..rubric import RewardResult

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


def reward_table(detail: RewardResult | None, title: str) -> Table:
    """A rubric's breakdown: each criterion's verdict, score, weight and why."""
    t = Table(title=title)
    t.add_column("criterion")
    t.add_column("verdict")
    t.add_column("score", justify="right")
    t.add_column("weight", justify="right")
    t.add_column("explanation", overflow="fold")
    for c in detail.breakdown if detail is not None else ():
        style = VERDICT_STYLE.get(Verdict(c.verdict), "white")
        gate = " (gate)" if c.gate else ""
        t.add_row(
            c.name + gate,
            f"[{style}]{c.verdict}[/]",
            f"{c.score:.3f}",
            f"{c.weight:g}",
            c.explanation,
        )
    return t


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
    console.print(reward_table(result.detail, f"{result.task} — {label}, seed {result.seed}"))
    console.print(
        f"[bold]reward {result.reward:.3f}[/]   functional tests alone: "
        f"{result.functional:.3f}   grading took "
        f"{result.timings.get('total_s', 0):.1f} s   artifacts: {result.artifacts_dir}"
    )
