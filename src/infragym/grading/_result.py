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

    ``health`` is what the harness measured about its own machine during the load window
    (late starts, CPU stall; see ``grading._health``). ``overloaded`` grades are platform
    failures too (``error`` says why): the reward the rubric gave is kept in
    ``withheld_reward`` (and its breakdown in ``breakdown``) for diagnosis and must not be
    used as a score. A grader failure on an overloaded machine is ``overloaded`` as well.

    ``variant`` is the task's variant the seed drew (``[variants]`` key to value; empty
    for a task that varies nothing): what the instructions said and the grader used.
    """

    schema_version: int = GRADE_SCHEMA_VERSION
    task: str
    seed: int
    variant: dict[str, str | int | float | bool] = Field(default_factory=dict)
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
    overloaded: bool = False
    health: dict[str, Any] | None = None
    withheld_reward: float | None = None
