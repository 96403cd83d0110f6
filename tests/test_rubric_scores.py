"""The stock score functions and gates, at their edges."""

from __future__ import annotations

import math
from typing import Any

import pytest

from infragym import ConfigError
from infragym.checkers import CheckResult, Verdict
from infragym.rubric import (
    Criterion,
    Rubric,
    all_or_nothing,
    at_least,
    at_most,
    gate,
    linear,
    metric_value,
)


def result(verdict: Verdict = Verdict.PASS, score: float = 1.0, judged: int | None = None,
           **metrics: Any) -> CheckResult:  # fmt: skip
    return CheckResult("c", verdict, score, "synthetic", metrics, judged=judged)


def test_all_or_nothing_pays_only_a_pass() -> None:
    assert all_or_nothing(result(Verdict.PASS, 0.0)) == 1.0
    assert all_or_nothing(result(Verdict.FAIL, 0.999)) == 0.0
    assert all_or_nothing(result(Verdict.UNKNOWN, 1.0)) == 0.0


@pytest.mark.parametrize(
    ("worst", "score"),
    [(0.5, 0.0), (0.3, 0.0), (0.745, 0.5), (0.99, 1.0), (1.0, 1.0), (0.5 + 0.49 / 4, 0.25)],
)
def test_linear_ramps_from_floor_to_target_and_clamps(worst: float, score: float) -> None:
    fn = linear(0.5, 0.99, "worst_availability")
    assert fn(result(worst_availability=worst)) == pytest.approx(score)


def test_linear_reads_the_score_or_a_metric_and_runs_either_way() -> None:
    assert linear(0.0, 0.5)(result(score=0.25)) == pytest.approx(0.5)
    latency = linear(2.0, 0.5, "p99_s")  # less is better
    assert latency(result(p99_s=2.0)) == 0.0
    assert latency(result(p99_s=0.5)) == 1.0
    assert latency(result(p99_s=1.25)) == pytest.approx(0.5)
    assert latency(result(p99_s=0.1)) == 1.0 and latency(result(p99_s=9.0)) == 0.0


@pytest.mark.parametrize("bad", [None, "0.9", True, math.nan, math.inf, [0.9]])
def test_what_was_not_measured_earns_nothing(bad: object) -> None:
    r = result(worst_availability=bad)
    assert linear(0.5, 0.99, "worst_availability")(r) == 0.0
    assert at_least(0.0, "worst_availability")(r) == 0.0
    assert at_most(1e9, "worst_availability")(r) == 0.0
    assert metric_value(r, "worst_availability") is None
    assert linear(0.5, 0.99, "absent")(result()) == 0.0


def test_thresholds_include_their_edge() -> None:
    assert at_least(0.9)(result(score=0.9)) == 1.0
    assert at_least(0.9)(result(score=0.8999)) == 0.0
    assert at_most(0.2, "p99_s")(result(p99_s=0.2)) == 1.0
    assert at_most(0.2, "p99_s")(result(p99_s=0.2001)) == 0.0


@pytest.mark.parametrize(("floor", "target"), [(0.5, 0.5), (math.nan, 1.0), (0.0, math.inf)])
def test_a_ramp_without_a_slope_is_refused(floor: float, target: float) -> None:
    with pytest.raises(ConfigError, match="linear"):
        linear(floor, target)


def test_a_stock_gate_caps_and_refuses_a_vacuous_pass() -> None:
    g = gate("serving", cap=0.25, min_judged=50)
    assert g.gate and g.weight == 0.0 and g.cap == 0.25 and g.min_judged == 50
    rubric = Rubric([g, Criterion("durable", weight=1.0)])
    full = {"durable": result()}
    assert rubric.score({**full, "serving": result(judged=50)}).reward == 1.0
    r = rubric.score({**full, "serving": result(judged=3)})
    assert r.reward == 0.25 and r.vacuous == ["serving"] and r.capped_by == "serving"
    r = rubric.score({**full, "serving": result(Verdict.FAIL, 0.9, judged=90)})
    assert r.reward == 0.25 and r.gates_failed == ["serving"]
    assert gate("functional").cap == 0.0
