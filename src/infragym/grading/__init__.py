"""Grading: run a task's hidden grader on a fresh production cluster and record the result."""

from ._context import GradeContext, GradeOutcome
from ._pipeline import grade_workspace, load_grader
from ._result import GRADE_SCHEMA_VERSION, GradeResult

__all__ = [
    "GRADE_SCHEMA_VERSION",
    "GradeContext",
    "GradeOutcome",
    "GradeResult",
    "grade_workspace",
    "load_grader",
]
