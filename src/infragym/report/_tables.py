"""Tables of verdicts for the terminal, as the command line and the demo print them."""

from __future__ import annotations

from rich.table import Table

from ..checkers import CheckResult, Verdict

VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.UNKNOWN: "yellow"}


def verdict_table(results: dict[str, CheckResult], title: str = "checkers") -> Table:
    """One row per checker: verdict (coloured), score and explanation."""
    t = Table(title=title, show_lines=False)
    t.add_column("checker")
    t.add_column("verdict")
    t.add_column("score", justify="right")
    t.add_column("explanation", overflow="fold")
    for name, r in results.items():
        style = VERDICT_STYLE[r.verdict]
        t.add_row(name, f"[{style}]{r.verdict.value}[/]", f"{r.score:.3f}", r.explanation)
    return t
