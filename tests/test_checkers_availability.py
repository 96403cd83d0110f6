from __future__ import annotations

import pytest
from test_checkers_support import HistoryBuilder, requests

from infragym import ConfigError
from infragym.checkers import Availability, Verdict
from infragym.history import History


def test_all_ok_without_faults_passes() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 5.0, 10)
    res = Availability().check(b.build())
    assert res.verdict is Verdict.PASS
    assert res.score == 1.0
    assert res.metrics["window.steady.total"] == 50
    assert res.metrics["window.steady.availability"] == 1.0
    assert res.metrics["windows"] == 1


def test_fault_window_where_everything_failed_fails() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 2.0, 10)
    b.fault("p1", 2.0, 4.0)
    requests(b, 2.0, 4.0, 10, outcome="fail")
    requests(b, 4.0, 6.0, 10)
    res = Availability().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.score == 0.0
    assert res.metrics["window.p1.availability"] == 0.0
    assert res.metrics["window.p1.total"] == 20
    assert res.metrics["window.steady.total"] == 40
    assert res.metrics["window.steady.availability"] == 1.0
    assert res.metrics["worst_window"] == "p1"
    assert res.metrics["availability"] == pytest.approx(40 / 60)
    assert "p1" in res.explanation


def test_info_operations_count_as_unavailable() -> None:
    b = HistoryBuilder()
    b.fault("crash", 0.0, 2.0, fault="crash")
    requests(b, 0.0, 1.0, 10, outcome="info")
    requests(b, 1.0, 2.0, 10)
    res = Availability(slo=0.4).check(b.build())
    assert res.metrics["window.crash.availability"] == 0.5
    assert res.verdict is Verdict.PASS
    assert Availability(slo=0.6).check(b.build()).verdict is Verdict.FAIL


def test_never_completed_operations_count_as_unavailable() -> None:
    b = HistoryBuilder()
    for i in range(10):
        b.op("request", None, t=i * 0.1, done=None)
    res = Availability().check(b.build())
    assert res.metrics["window.steady.ok"] == 0
    assert res.verdict is Verdict.FAIL


def test_windows_are_keyed_by_intended_start_not_invocation() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 1.0, 20)
    b.fault("pause", 1.0, 2.0, fault="pause")
    # meant to start during the fault, but the stalled client only invoked after the heal
    for i in range(20):
        b.op("request", None, t=2.5 + i * 0.01, done=2.51 + i * 0.01, intended=1.0 + i * 0.05)
    res = Availability().check(b.build())
    assert res.metrics["window.pause.total"] == 20
    assert res.metrics["window.steady.total"] == 20


def test_operations_before_and_after_faults_are_steady() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 1.0, 10)
    b.fault("a", 1.0, 2.0)
    requests(b, 1.0, 2.0, 10)
    b.fault("b", 3.0, 4.0)
    requests(b, 2.0, 3.0, 10, outcome="fail")  # between the faults
    requests(b, 3.0, 4.0, 10)
    requests(b, 4.0, 5.0, 10)
    res = Availability().check(b.build())
    assert res.metrics["window.steady.total"] == 30
    assert res.metrics["window.steady.ok"] == 20
    assert res.metrics["window.a.total"] == 10
    assert res.metrics["window.b.total"] == 10
    assert res.verdict is Verdict.FAIL
    assert res.metrics["worst_window"] == "steady"


def test_overlapping_windows_each_count_the_operation() -> None:
    b = HistoryBuilder()
    b.fault("a", 0.0, 2.0)
    b.fault("b", 1.0, 3.0)
    requests(b, 0.0, 3.0, 10)
    res = Availability().check(b.build())
    assert res.metrics["window.a.total"] == 20
    assert res.metrics["window.b.total"] == 20
    assert "window.steady.total" not in res.metrics  # every op was inside some fault
    assert res.verdict is Verdict.PASS


def test_too_few_operations_in_a_window_is_unknown() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 5.0, 10)
    b.fault("blip", 5.0, 5.3)
    requests(b, 5.0, 5.3, 10)
    res = Availability(min_ops=10).check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert "blip (3 ops)" in res.explanation
    assert res.metrics["windows_too_small"] == 1
    assert Availability(min_ops=3).check(b.build()).verdict is Verdict.PASS


def test_failing_window_wins_over_unknown_window() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 5.0, 10)
    b.fault("blip", 5.0, 5.3)
    requests(b, 5.0, 5.3, 10)
    b.fault("long", 6.0, 8.0)
    requests(b, 6.0, 8.0, 10, outcome="fail")
    assert Availability().check(b.build()).verdict is Verdict.FAIL


def test_fault_slo_is_separate_from_steady_slo() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 2.0, 10)
    b.fault("p", 2.0, 4.0)
    requests(b, 2.0, 3.6, 10)
    requests(b, 3.6, 4.0, 10, outcome="fail")
    assert Availability().check(b.build()).verdict is Verdict.FAIL
    res = Availability(fault_slo=0.75).check(b.build())
    assert res.verdict is Verdict.PASS
    assert res.metrics["window.p.slo"] == 0.75
    assert res.metrics["window.steady.slo"] == 0.99


def test_score_is_worst_window_relative_to_slo() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 2.0, 10)
    b.fault("p", 2.0, 4.0)
    requests(b, 2.0, 3.0, 10)
    requests(b, 3.0, 4.0, 10, outcome="fail")
    res = Availability(slo=0.8).check(b.build())
    assert res.score == pytest.approx(0.5 / 0.8)
    assert res.metrics["worst_availability"] == 0.5


def test_repeated_labels_are_kept_apart() -> None:
    b = HistoryBuilder()
    b.fault("kill", 0.0, 1.0)
    b.fault("kill", 2.0, 3.0)
    requests(b, 0.0, 1.0, 10)
    requests(b, 1.0, 2.0, 10)
    requests(b, 2.0, 3.0, 10, outcome="fail")
    res = Availability().check(b.build())
    assert res.metrics["window.kill.availability"] == 1.0
    assert res.metrics["window.kill#2.availability"] == 0.0


def test_filter_by_operation_kind() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 1.0, 20, f="read")
    requests(b, 0.0, 1.0, 20, f="cas", outcome="fail")
    assert Availability().check(b.build()).verdict is Verdict.FAIL
    assert Availability(f="read").check(b.build()).verdict is Verdict.PASS
    res = Availability(f="write").check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert "'write'" in res.explanation


def test_empty_history_is_unknown() -> None:
    res = Availability().check(History())
    assert res.verdict is Verdict.UNKNOWN
    assert res.score == 0.0


@pytest.mark.parametrize("kw", [{"slo": 0.0}, {"slo": 1.5}, {"fault_slo": -1}, {"min_ops": 0}])
def test_bad_configuration_is_rejected(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Availability(**kw)  # type: ignore[arg-type]
