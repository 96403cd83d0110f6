"""The persisted outcome of scoring a rubric; versioned because stores keep it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..checkers import Verdict

MetricValue = float | int | str | bool | None


class CriterionScore(BaseModel):
    """How one criterion contributed.

    ``contribution`` is ``weight * score / total weight``: the contributions sum to
    ``RewardResult.uncapped``. ``cap_applied`` is the cap this criterion imposed as a
    failed gate, or None. ``judged`` is what the check judged (None: not counted) and
    ``vacuous`` says it was fewer than the criterion's ``min_judged``, which fails it.
    ``excluded`` says the verdict was unknown and the criterion left out of the reward
    (its ``exclude_unknown``): contribution 0, and its weight is not in the total.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    name: str
    check: str
    score: float = Field(ge=0.0, le=1.0)
    weight: float = Field(ge=0.0)
    contribution: float = Field(ge=0.0, le=1.0)
    verdict: Verdict
    explanation: str
    gate: bool
    cap_applied: float | None = None
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    judged: int | None = None
    vacuous: bool = False
    excluded: bool = False


class RewardResult(BaseModel):
    """A reward in [0, 1] and why.

    ``uncapped`` is the weighted mean of criterion scores; ``reward`` is that, capped by
    the lowest cap of any failed gate; ``capped_by`` names that gate (None if no gate
    lowered the reward). ``unknown`` names the criteria whose verdict is unknown and
    ``vacuous`` those whose check judged too little to count; ``excluded`` those left out
    of the reward because their verdict is unknown and they say so (a judge that is not
    configured): the reward is then the weighted mean of the others (all three are empty in
    a result written before they existed). Non-finite metric values (an infinite latency)
    are written as the JSON constants ``Infinity``/``NaN``, which Python's and pydantic's
    parsers accept.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    schema_version: Literal[1] = 1
    reward: float = Field(ge=0.0, le=1.0)
    uncapped: float = Field(ge=0.0, le=1.0)
    capped_by: str | None = None
    gates_failed: list[str] = Field(default_factory=list)
    breakdown: list[CriterionScore]
    unknown: list[str] = Field(default_factory=list)
    vacuous: list[str] = Field(default_factory=list)
    excluded: list[str] = Field(default_factory=list)

    def criterion(self, name: str) -> CriterionScore:
        """The breakdown entry of criterion ``name`` (KeyError if there is none)."""
        for c in self.breakdown:
            if c.name == name:
                return c
        raise KeyError(name)
