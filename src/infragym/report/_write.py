"""Writing the report: runs read, the page rendered, the file written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._errors import ConfigError
from ._page import render
from ._runs import load_runs

REPORT_FILE = "report.html"


def render_report(
    run_dirs: Sequence[str | Path],
    *,
    pass_threshold: float | None = None,
    bucket_s: float = 0.5,
    seed: int = 0,
) -> str:
    """The HTML report of ``run_dirs`` (see :mod:`infragym.report`). ``pass_threshold``:
    the reward an episode must reach to pass (default: each task's robust band's lower
    bound, else 1.0); ``bucket_s``: the timeline's bucket width; ``seed``: the bootstrap's."""
    if not bucket_s > 0.0:
        raise ConfigError(f"bucket width {bucket_s} s must be above 0, e.g. 0.5")
    return render(load_runs(run_dirs), threshold=pass_threshold, bucket_s=bucket_s, seed=seed)


def write_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    pass_threshold: float | None = None,
    bucket_s: float = 0.5,
    seed: int = 0,
) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (a file, or a directory to hold
    ``report.html``), atomically, and return its path."""
    text = render_report(run_dirs, pass_threshold=pass_threshold, bucket_s=bucket_s, seed=seed)
    dest = Path(out)
    if dest.is_dir():
        dest = dest / REPORT_FILE
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)
    return dest
