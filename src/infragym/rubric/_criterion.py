"""One criterion of a rubric: which check result it scores, how much it weighs, and
whether it is a gate."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .._errors import ConfigError
from ..checkers import CheckResult

ScoreFn = Callable[[CheckResult], float]
"""Turns a check result into a score in [0, 1] (default: the result's own ``score``)."""


@dataclass(frozen=True)
class Criterion:
    """A weighted, optionally gating, reading of one check result.

    ``check`` names the result to score (default: ``name``), so one checker can feed
    several criteria, e.g. a gate on its verdict and a weight on its graded score.
    ``score_fn`` replaces the checker's own score when given (e.g. ``lambda r: 1.0 if
    r.verdict == "pass" else 0.0`` for all-or-nothing).

    A ``gate`` whose verdict is not ``pass`` caps the whole reward at ``cap``: gates come
    before weights, so a system that fails its functional contract earns nothing for
    robustness it cannot show. An ``unknown`` verdict scores ``unknown_score`` (default 0)
    and fails a gate: unknown is reported, not guessed, and never rewarded by default.

    ``min_judged`` (default 1) guards against vacuous passes: a check that judged fewer
    than that many things (its result's ``judged``: a linearizability check of a history
    where nothing succeeded judged no operation) is not a pass; the criterion fails with
    score 0 and says "vacuous". Set it higher when a verdict needs a sample to mean
    anything. A result whose checker does not count (``judged`` is None) is taken as is.

    ``exclude_unknown`` leaves an ``unknown`` verdict out of the reward instead of scoring
    it: its weight leaves the total, so the other criteria are scored as if it were not
    there, and the result lists it in ``excluded``. For a criterion whose measurement may
    be unavailable rather than failed (a model judge that is not configured or not
    answering), where neither 0 nor 1 would be true. A gate cannot exclude.
    """

    name: str
    weight: float = 1.0
    check: str | None = None
    gate: bool = False
    cap: float = 0.0
    unknown_score: float = 0.0
    score_fn: ScoreFn | None = None
    description: str = ""
    min_judged: int = 1
    exclude_unknown: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a rubric criterion needs a non-empty name")
        if not (math.isfinite(self.weight) and self.weight >= 0.0):
            raise ConfigError(
                f"criterion {self.name!r} has weight {self.weight}; weights must be finite "
                "and >= 0 (use weight=0 for a pure gate)"
            )
        for what, v in (("cap", self.cap), ("unknown_score", self.unknown_score)):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"criterion {self.name!r} has {what}={v}; it must be in [0, 1]")
        if isinstance(self.min_judged, bool) or not (
            isinstance(self.min_judged, int) and self.min_judged >= 0
        ):
            raise ConfigError(
                f"criterion {self.name!r} has min_judged={self.min_judged!r}; it must be an "
                "integer >= 0 (0 accepts a check that judged nothing)"
            )
        if self.exclude_unknown and self.gate:
            raise ConfigError(
                f"criterion {self.name!r} is a gate with exclude_unknown=True; a gate cannot "
                "be left out (an unknown gate fails): drop one of the two"
            )

    @property
    def check_name(self) -> str:
        return self.check if self.check is not None else self.name
