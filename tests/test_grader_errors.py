"""A grader that raises is a platform failure that says where: the full traceback is kept
in the artifacts and the error names the last frames, on the console too."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tinytask import tiny_task

from infragym.grading import grade_workspace
from infragym.tasks import load_task

# reads the workspace only (no cluster): grading takes milliseconds and needs no root
RAISING_GRADER = """
def hosts_by_name(names):
    return {name: name.upper() for name in names}


def pick(names, wanted):
    return hosts_by_name(names)[wanted]


async def grade(ctx):
    return pick(["n1", "n2"], "n9")
"""


def _task(tmp_path: Path) -> Path:
    return tiny_task(tmp_path / "tasks", dev_hosts=0, grader=RAISING_GRADER)


def test_a_raising_grader_keeps_its_traceback_and_names_its_last_frames(tmp_path: Path) -> None:
    task_dir = _task(tmp_path)
    task = load_task(task_dir)
    out = tmp_path / "artifacts"
    result = asyncio.run(grade_workspace(task, task_dir / "solutions" / "robust", 1, out))
    assert result.reward is None and result.error is not None
    assert "KeyError: 'n9'" in result.error
    # innermost first: where it was raised, then its callers
    assert "grader.py:7 in pick `return hosts_by_name(names)[wanted]`" in result.error
    assert "grader.py:11 in grade" in result.error
    assert "wait_for" not in result.error  # the pipeline's frames are not the grader's
    saved = out / "grader-traceback.txt"
    assert str(saved) in result.error
    text = saved.read_text()
    assert text.startswith("Traceback (most recent call last):")
    assert "in pick" in text and "in grade" in text and text.rstrip().endswith("KeyError: 'n9'")


def test_the_console_shows_where_the_grader_failed(tmp_path: Path) -> None:
    task_dir = _task(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "infragym.cli.main", "grade", str(task_dir), "--workspace",
         str(task_dir / "solutions" / "robust"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 2, r.stderr
    shown = " ".join((r.stdout + r.stderr).split())  # rich wraps long lines
    assert "KeyError: 'n9'" in shown
    # the frame's code as written: [wanted] is not taken for console markup
    assert "grader.py:7 in pick `return hosts_by_name(names)[wanted]`" in shown
    assert "grader-traceback.txt" in shown
    assert (tmp_path / "out" / "grader-traceback.txt").exists()
