from __future__ import annotations

import math

import pytest
from histories import HistoryBuilder, requests

from infragym import ConfigError
from infragym.checkers import Latency, Verdict
from infragym.history import History


def _latencies(lat_ms: list[float], f: str = "request") -> HistoryBuilder:
    b = HistoryBuilder()
    for i, ms in enumerate(lat_ms):
        t = i * 0.01
        b.op(f, None, t=t, done=t + ms / 1000, intended=t)
    return b


def test_percentiles_are_accurate() -> None:
    res = Latency().check(_latencies([float(ms) for ms in range(1, 101)]).build())
    assert res.verdict is Verdict.PASS
    assert "measured only" in res.explanation
    assert res.metrics["p50_s"] == pytest.approx(0.050, rel=2e-3)
    assert res.metrics["p90_s"] == pytest.approx(0.090, rel=2e-3)
    assert res.metrics["p99_s"] == pytest.approx(0.099, rel=2e-3)
    assert res.metrics["max_s"] == pytest.approx(0.100, rel=2e-3)
    assert res.metrics["count"] == 100
    assert res.metrics["unknown_outcome"] == 0


def test_stalled_client_shows_in_latency() -> None:
    b = HistoryBuilder()
    for i in range(100):
        intended = i * 0.05
        invoke = intended + (2.0 if i >= 90 else 0.0)  # the client stalled 2 s
        b.op("request", None, t=invoke, done=invoke + 0.002, intended=intended)
    res = Latency(p99=0.5).check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["p99_s"] == pytest.approx(2.002, rel=2e-3)
    assert res.metrics["p50_s"] == pytest.approx(0.002, rel=2e-3)
    assert res.score == pytest.approx(0.5 / 2.002, rel=2e-3)
    # the same history measured from invocation would have hidden the stall
    hidden = HistoryBuilder()
    for i in range(100):
        t = i * 0.05 + (2.0 if i >= 90 else 0.0)
        hidden.op("request", None, t=t, done=t + 0.002, intended=t)
    assert Latency(p99=0.5).check(hidden.build()).verdict is Verdict.PASS


def test_unknown_outcomes_count_as_infinitely_slow() -> None:
    b = _latencies([1.0] * 198)
    b.op("request", None, t=5.0, done=5.5, outcome="info", intended=5.0)
    b.op("request", None, t=5.1, done=None, intended=5.1)
    res = Latency(p50=0.01, p99=0.01).check(b.build())
    assert res.metrics["unknown_outcome"] == 2
    assert res.metrics["max_s"] == math.inf
    assert res.metrics["p999_s"] == math.inf
    assert res.metrics["p99_s"] == pytest.approx(0.001, rel=2e-3)  # 2 of 200 is within 1%
    assert res.verdict is Verdict.PASS
    b.op("request", None, t=5.2, done=None, intended=5.2)
    res = Latency(p50=0.01, p99=0.01).check(b.build())
    assert res.metrics["p99_s"] == math.inf
    assert res.verdict is Verdict.FAIL
    assert res.score == 0.0
    assert "inf" in res.explanation


def test_failed_operations_are_left_out() -> None:
    b = _latencies([1.0] * 20)
    for i in range(20):
        b.op("request", None, t=i, done=i + 30.0, outcome="fail", intended=i)
    res = Latency(p99=0.01).check(b.build())
    assert res.metrics["count"] == 20
    assert res.verdict is Verdict.PASS


def test_score_falls_with_overshoot() -> None:
    h = _latencies([100.0] * 50).build()
    assert Latency(p99=0.1).check(h).score == 1.0
    assert Latency(p99=0.05).check(h).score == pytest.approx(0.5, rel=2e-3)
    assert Latency(p99=0.025).check(h).score == pytest.approx(0.25, rel=2e-3)
    both = Latency(p50=0.05, p99=0.05).check(h)
    assert both.score == pytest.approx(0.25, rel=4e-3)
    assert both.explanation.count("> target") == 2


def test_p50_target_is_judged() -> None:
    h = _latencies([10.0] * 60 + [1.0] * 40).build()
    assert Latency(p50=0.005).check(h).verdict is Verdict.FAIL
    assert Latency(p50=0.011).check(h).verdict is Verdict.PASS


def test_filter_by_kind() -> None:
    b = _latencies([1.0] * 20, f="read")
    for i in range(20):
        b.op("write", "k", i, t=i, done=i + 3.0, intended=i)
    assert Latency(p99=0.1).check(b.build()).verdict is Verdict.FAIL
    assert Latency(p99=0.1, f="read").check(b.build()).verdict is Verdict.PASS


def test_too_few_or_no_operations_is_unknown() -> None:
    assert Latency().check(History()).verdict is Verdict.UNKNOWN
    res = Latency(min_ops=10).check(_latencies([1.0] * 9).build())
    assert res.verdict is Verdict.UNKNOWN
    assert "need at least 10" in res.explanation
    b = HistoryBuilder()
    requests(b, 0, 2, 10, outcome="fail")
    assert Latency().check(b.build()).verdict is Verdict.UNKNOWN


@pytest.mark.parametrize("kw", [{"p99": 0.0}, {"p50": -1.0}, {"p99": math.inf}, {"min_ops": 0}])
def test_bad_configuration_is_rejected(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Latency(**kw)  # type: ignore[arg-type]
