"""What every command shares: the consoles, where runs go, strict JSON and the printing of
verdicts and grades."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._errors import ConfigError
from ..checkers import Verdict
from ..grading import GradeResult
from ..report import VERDICT_STYLE
from ..rubric import RewardResult

console = Console()
err_console = Console(stderr=True)

RUNS_HELP = "$XDG_DATA_HOME/infragym/runs, or ~/.local/share/infragym/runs without it"


def runs_home() -> Path:
    """Where commands put what they write when not given ``--out``: ``$XDG_DATA_HOME/
    infragym/runs``, or ``~/.local/share/infragym/runs`` when it is unset or not absolute
    (as the XDG base directory spec says), never the current directory."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "infragym" / "runs"


def fresh_dir(parent: Path, stem: str) -> Path:
    """A new, empty directory ``parent/STEM-YYYYmmdd-HHMMSS`` (``-2``, ``-3`` ... if taken)."""
    parent.mkdir(parents=True, exist_ok=True)
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        d = parent / (base if n == 1 else f"{base}-{n}")
        try:
            d.mkdir()
        except FileExistsError:
            continue
        return d
    raise ConfigError(f"no free directory name {base}-N under {parent}")


def new_out_dir(out: Path, *, resumable: bool = False) -> Path:
    """``out`` if it is absent or an empty directory; a run there would otherwise mix its
    episodes with those of an earlier run. With ``resumable``, also a directory holding a
    run store (the runner resumes the run there, or refuses another configuration)."""
    if resumable and (out / "run.sqlite").is_file():  # runner.RUN_STORE_FILE (kept light)
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "is not a directory" if not out.is_dir() else "is not empty (an earlier run?)"
        raise ConfigError(
            f"--out {out} {what}: a run there would mix its episodes with what is there; "
            f"choose another --out or delete {out}"
        )
    return out


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
            f"[red]grading failed (platform error, no reward):[/] {escape(result.error)}",
            soft_wrap=True,
        )
        return
    variant = " ".join(f"{k}={v}" for k, v in result.variant.items())
    title = f"{result.task} — {label}, seed {result.seed}" + (f" ({variant})" if variant else "")
    console.print(reward_table(result.detail, title))
    console.print(
        f"[bold]reward {result.reward:.3f}[/]   functional tests alone: "
        f"{result.functional:.3f}   grading took "
        f"{result.timings.get('total_s', 0):.1f} s   artifacts: {result.artifacts_dir}"
    )
    if result.detail is not None and result.detail.excluded:
        console.print(
            f"[yellow]left out of the reward (unknown, not scored):[/] "
            f"{escape(', '.join(result.detail.excluded))}"
        )


def readiness(missing: tuple[str, ...]) -> str:
    """A task's readiness cell: ready, or the Debian packages it still needs."""
    if not missing:
        return "[green]ready[/]"
    return f"[red]not ready[/]: apt-get install {escape(' '.join(missing))}"
