"""The checker contract: a pure function of a history that returns a three-state verdict."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from ..history import History


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


Metric = float | int | str | bool | None


@dataclass(frozen=True)
class CheckResult:
    """What a checker concluded.

    ``score`` in [0, 1] grades the property (1 = fully met) so a rubric can reward
    partial credit; ``verdict`` is the binary judgement against the checker's threshold,
    or ``unknown`` when the history does not allow a judgement (too few operations, a
    search budget exceeded, the checker itself failed).

    ``judged`` counts what the verdict rests on (operations, reads, writes, tests: each
    checker says which), so a pass that judged nothing is visible as such: a rubric's
    criterion fails a check that judged fewer than its ``min_judged``. None means the
    checker does not count (every built-in checker does).
    """

    name: str
    verdict: Verdict
    score: float
    explanation: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    judged: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score {self.score} of checker {self.name!r} is outside [0, 1]")
        if self.judged is not None and self.judged < 0:
            raise ValueError(f"judged={self.judged} of checker {self.name!r} is negative")


class Checker(Protocol):
    """A checker has a name and judges a finished history (ops and fault events).

    ``name`` is a read-only property so frozen dataclasses satisfy the protocol; a class
    with a plain (settable) ``name`` attribute satisfies it too.
    """

    @property
    def name(self) -> str: ...

    def check(self, history: History) -> CheckResult: ...


def run_checker(checker: Checker, history: History) -> CheckResult:
    """Run ``checker``; if it raises, the verdict is unknown instead of a crashed run."""
    try:
        return checker.check(history)
    except Exception as exc:
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return CheckResult(
            name=getattr(checker, "name", type(checker).__name__),
            verdict=Verdict.UNKNOWN,
            score=0.0,
            explanation=f"the checker raised {tb}; no judgement could be made",
            metrics={"error": tb},
            judged=0,
        )
