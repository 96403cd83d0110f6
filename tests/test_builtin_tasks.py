"""Every built-in task passes ``check_task`` on one seed: its layout and grader, and every
reference, probe and the starter workspace graded for real inside its band. A new task is
under CI the moment it exists; the full seed range runs outside CI (``infragym validate
TASK --tiers``) and is quoted in the README."""

from __future__ import annotations

import pytest
from conftest import needs_root

import infragym.tasks
from infragym.tasks import Task, list_tasks
from infragym.testing import check_task

BUILTIN = infragym.tasks.BUILTIN_DIR


@needs_root
@pytest.mark.timeout(1200)  # every tier of a task, each a real grading (ha-web's ~80 s)
@pytest.mark.parametrize(
    "task", [t for t in list_tasks() if t.path.parent == BUILTIN], ids=lambda t: t.name
)
def test_builtin_task_passes_check_task(task: Task) -> None:
    # two gradings at once, as `infragym validate --concurrency 2` grades the README's
    # tables: admission control and the health check keep the rewards those of one at a
    # time (a withheld grading fails the check), and the suite stays within its budget
    report = check_task(task, seeds=(1,), concurrency=2)
    assert {r.tier for r in report.rows} >= {"robust", "starter"}
