"""Weighted criteria with gates: check results in, one reward in [0, 1] out."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .._errors import ConfigError
from ..checkers import CheckResult, Verdict
from ._criterion import Criterion
from ._result import CriterionScore, RewardResult


@dataclass(frozen=True, init=False)
class Rubric:
    """An ordered set of criteria, validated when built so a bad rubric fails before a run.

    ``score`` is pure: the same check results always give the same reward. A check that
    judged fewer than its criterion's ``min_judged`` fails it, and an unknown verdict of a
    criterion with ``exclude_unknown`` leaves it out of the total (see :class:`Criterion`).
    """

    criteria: tuple[Criterion, ...]

    def __init__(self, criteria: Iterable[Criterion]) -> None:
        crits = tuple(criteria)
        if not crits:
            raise ConfigError("a rubric needs at least one criterion; pass Criterion(...) items")
        seen: set[str] = set()
        for c in crits:
            if not isinstance(c, Criterion):
                raise ConfigError(f"rubric items must be Criterion, got {type(c).__name__}")
            if c.name in seen:
                raise ConfigError(
                    f"two criteria are named {c.name!r}; give each a distinct name "
                    "(use check= to score the same result twice)"
                )
            seen.add(c.name)
        if sum(c.weight for c in crits) <= 0.0:
            raise ConfigError(
                "every criterion has weight 0, so no reward can be earned; give at least one "
                "criterion a positive weight"
            )
        object.__setattr__(self, "criteria", crits)

    @property
    def checks(self) -> frozenset[str]:
        """The names of the check results :meth:`score` needs."""
        return frozenset(c.check_name for c in self.criteria)

    def score(self, results: Mapping[str, CheckResult]) -> RewardResult:
        missing = sorted(self.checks - set(results))
        if missing:
            raise ConfigError(
                f"no check result for {', '.join(map(repr, missing))} (have "
                f"{', '.join(map(repr, sorted(results))) or 'none'}); run those checkers or "
                "fix the criteria's check= names"
            )
        left_out = {
            c.name
            for c in self.criteria
            if c.exclude_unknown and results[c.check_name].verdict is Verdict.UNKNOWN
        }
        total = sum(c.weight for c in self.criteria if c.name not in left_out)
        if total <= 0.0:
            raise ConfigError(
                f"no reward can be given: every weighted criterion is unknown and left out "
                f"({', '.join(sorted(left_out))}); a reward of 0 or 1 would be made up. Make "
                "those measurements available (e.g. configure the judge) or add criteria"
            )
        rows: list[CriterionScore] = []
        caps: list[tuple[float, str]] = []
        for c in self.criteria:
            result = results[c.check_name]
            vacuous = (
                c.name not in left_out
                and result.judged is not None
                and result.judged < c.min_judged
            )
            verdict: Verdict
            if c.name in left_out:
                verdict, s = result.verdict, 0.0
                explanation = f"left out of the reward (unknown): {result.explanation}"
            elif vacuous:
                verdict = Verdict.FAIL if result.verdict is Verdict.PASS else result.verdict
                s = 0.0
                explanation = (
                    f"vacuous: judged {result.judged} < min {c.min_judged}; {result.explanation}"
                )
            else:
                verdict, explanation = result.verdict, result.explanation
                s = self._criterion_score(c, result)
            failed_gate = c.gate and verdict is not Verdict.PASS
            if failed_gate:
                caps.append((c.cap, c.name))
            rows.append(
                CriterionScore(
                    name=c.name,
                    check=c.check_name,
                    score=s,
                    weight=c.weight,
                    contribution=0.0 if c.name in left_out else min(1.0, c.weight * s / total),
                    verdict=verdict,
                    explanation=explanation,
                    gate=c.gate,
                    cap_applied=c.cap if failed_gate else None,
                    metrics=dict(result.metrics),
                    judged=result.judged,
                    vacuous=vacuous,
                    excluded=c.name in left_out,
                )
            )
        uncapped = min(1.0, max(0.0, math.fsum(r.contribution for r in rows)))
        reward = uncapped
        capped_by: str | None = None
        if caps:
            cap, gate = min(caps)
            if cap < uncapped:
                reward, capped_by = cap, gate
        return RewardResult(
            reward=reward,
            uncapped=uncapped,
            capped_by=capped_by,
            gates_failed=[name for _, name in caps],
            breakdown=rows,
            unknown=[r.name for r in rows if r.verdict is Verdict.UNKNOWN],
            vacuous=[r.name for r in rows if r.vacuous],
            excluded=[r.name for r in rows if r.excluded],
        )

    @staticmethod
    def _criterion_score(c: Criterion, result: CheckResult) -> float:
        if result.verdict is Verdict.UNKNOWN:
            return c.unknown_score
        s = result.score if c.score_fn is None else c.score_fn(result)
        if not (isinstance(s, int | float) and 0.0 <= s <= 1.0):
            raise ConfigError(
                f"criterion {c.name!r} scored {s!r} for check {c.check_name!r}; a score "
                "function must return a number in [0, 1]"
            )
        return float(s)
