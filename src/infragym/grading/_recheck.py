"""A task's own re-check of a stored history: the grader's checkers and rubric, offline."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import cast

from ..history import History
from ..rubric import RewardResult
from ..tasks import Task
from ._pipeline import load_grader

RecheckFn = Callable[[History], RewardResult]


def load_recheck(task: Task) -> RecheckFn | None:
    """The task grader's ``recheck(history) -> RewardResult``, or None if it has none.

    A grader that defines ``recheck`` promises it scores a history it recorded exactly as
    its ``grade`` did (same checkers, same rubric, what else it needs read from the
    history's ``meta``), so ``infragym check`` agrees with the grade.
    """
    grade = load_grader(task)
    fn = getattr(sys.modules.get(grade.__module__), "recheck", None)
    return cast(RecheckFn, fn) if callable(fn) else None
