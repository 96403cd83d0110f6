"""What grading produces, persisted as JSON with a versioned schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..rubric import RewardResult

GRADE_SCHEMA_VERSION = 1


class GradeResult(BaseModel):
    """The outcome of grading one workspace.

    ``reward`` is None exactly when ``error`` is set: a failure of the platform itself (a
    host that cannot be built, a grader bug) gives no reward, never a reward of 0.
    ``functional`` is the score the functional tests alone would give (what an agent's
    visible tests measure), beside the fault-tolerance ``reward``.
    """

    schema_version: int = GRADE_SCHEMA_VERSION
    task: str
    seed: int
    reward: float | None
    functional: float | None = None
    breakdown: dict[str, float] = Field(default_factory=dict)
    detail: RewardResult | None = None
    timeline: list[dict[str, Any]] = Field(default_factory=list)
    history_path: str | None = None
    artifacts_dir: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
