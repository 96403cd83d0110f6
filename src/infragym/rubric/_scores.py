"""Stock score functions and gates for rubric criteria.

A criterion scores its check result with the result's own ``score`` unless given a
``score_fn``; these are the ones most graders need::

    Criterion("lost-writes", weight=3, score_fn=all_or_nothing)
    Criterion("availability", weight=4, score_fn=linear(0.5, 0.99, "worst_availability"))
    gate("serving", min_judged=50)          # a pass or the reward is 0

Every function reads a number (the result's ``score`` or one of its ``metrics``); a number
that is missing, not a number, or NaN scores 0: what was not measured earns nothing.
"""

from __future__ import annotations

import math

from .._errors import ConfigError
from ..checkers import CheckResult, Verdict
from ._criterion import Criterion, ScoreFn

__all__ = ["all_or_nothing", "at_least", "at_most", "gate", "linear", "metric_value"]


def all_or_nothing(result: CheckResult) -> float:
    """1 when the check passed, else 0 (one lost write is not 99 % durable)."""
    return 1.0 if result.verdict is Verdict.PASS else 0.0


def metric_value(result: CheckResult, metric: str | None) -> float | None:
    """``result.metrics[metric]`` (``result.score`` when ``metric`` is None) as a finite
    float, or None when it is missing or not a finite number."""
    v = result.score if metric is None else result.metrics.get(metric)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def linear(floor: float, target: float, metric: str | None = None) -> ScoreFn:
    """0 at ``floor``, 1 at ``target``, linear between and clamped outside.

    ``floor`` may lie above ``target`` for a figure where less is better (a latency:
    ``linear(2.0, 0.5, "p99_s")``). Reads ``metrics[metric]``, or the result's score.
    """
    for what, v in (("floor", floor), ("target", target)):
        if not math.isfinite(v):
            raise ConfigError(f"linear(): {what} must be a finite number, not {v!r}")
    if floor == target:
        raise ConfigError(
            f"linear({floor}, {target}): floor and target must differ (for a step, use "
            "at_least or at_most)"
        )

    def score(result: CheckResult) -> float:
        v = metric_value(result, metric)
        if v is None:
            return 0.0
        return min(1.0, max(0.0, (v - floor) / (target - floor)))

    score.__qualname__ = f"linear({floor!r}, {target!r}, {metric!r})"
    return score


def at_least(threshold: float, metric: str | None = None) -> ScoreFn:
    """1 when the figure is at least ``threshold``, else 0."""

    def score(result: CheckResult) -> float:
        v = metric_value(result, metric)
        return 1.0 if v is not None and v >= threshold else 0.0

    score.__qualname__ = f"at_least({threshold!r}, {metric!r})"
    return score


def at_most(threshold: float, metric: str | None = None) -> ScoreFn:
    """1 when the figure is at most ``threshold``, else 0."""

    def score(result: CheckResult) -> float:
        v = metric_value(result, metric)
        return 1.0 if v is not None and v <= threshold else 0.0

    score.__qualname__ = f"at_most({threshold!r}, {metric!r})"
    return score


def gate(
    name: str,
    *,
    cap: float = 0.0,
    min_judged: int = 1,
    weight: float = 0.0,
    check: str | None = None,
    description: str = "",
) -> Criterion:
    """A gate: unless check ``name`` passes, having judged at least ``min_judged`` things,
    the reward is capped at ``cap`` (0 by default). Weight 0 unless given: a gate is a
    condition, not a property to be paid for."""
    return Criterion(
        name,
        weight=weight,
        check=check,
        gate=True,
        cap=cap,
        min_judged=min_judged,
        description=description,
    )
