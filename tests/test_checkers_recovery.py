"""Recovery: the service as a whole comes back after each heal (a one-host task's crash
cannot be judged inside its window, where the host is down by definition)."""

from __future__ import annotations

from histories import HistoryBuilder, requests

from infragym.checkers import Recovery, Verdict


def one_host_crash(back_after: float | None) -> HistoryBuilder:
    """Serving 0-2 s, crashed 2-4 s (every request fails), then failing until
    ``back_after`` seconds past the heal (never, when None), then serving to 10 s."""
    b = HistoryBuilder()
    requests(b, 0.0, 2.0, 20)
    b.fault("crash-1", 2.0, 4.0, fault="crash", targets=("n1",))
    requests(b, 2.0, 4.0, 20, outcome="fail")
    back = 10.0 if back_after is None else 4.0 + back_after
    requests(b, 4.0, back, 20, outcome="fail")
    if back < 10.0:
        requests(b, back, 10.0, 20)
    return b


def test_a_service_back_at_once_recovers_in_its_latency() -> None:
    r = Recovery(within_s=1.0).check(one_host_crash(0.0).build())
    assert r.verdict is Verdict.PASS and r.judged == 1
    assert r.metrics["recovery.crash-1_s"] == r.metrics["recovery_max_s"]
    assert 0.0 <= float(r.metrics["recovery_max_s"] or 0.0) < 0.01


def test_recovery_after_2_3_s_is_measured_and_judged_against_the_limit() -> None:
    h = one_host_crash(2.3).build()
    took = Recovery(within_s=3.0).check(h)
    assert took.verdict is Verdict.PASS
    assert abs(float(took.metrics["recovery.crash-1_s"] or 0.0) - 2.305) < 0.01
    late = Recovery(within_s=2.0).check(h)
    assert late.verdict is Verdict.FAIL and "crash-1 2.30 s" in late.explanation


def test_a_service_that_never_comes_back_fails_and_says_so() -> None:
    r = Recovery().check(one_host_crash(None).build())
    assert r.verdict is Verdict.FAIL
    assert r.metrics["recovery.crash-1_s"] is None and r.metrics["recovery_max_s"] is None
    assert "crash-1 never" in r.explanation


def test_success_during_the_next_fault_does_not_count_as_recovery() -> None:
    b = one_host_crash(None)
    b.fault("pause-2", 6.0, 7.0, fault="pause", targets=("n1",))
    b.op("request", None, t=6.5, done=6.6, intended=6.5)  # after the next fault began
    r = Recovery().check(b.build())
    assert r.metrics["recovery.crash-1_s"] is None


def test_nothing_healed_is_unknown_not_a_pass() -> None:
    b = HistoryBuilder()
    requests(b, 0.0, 2.0, 20)
    r = Recovery().check(b.build())
    assert r.verdict is Verdict.UNKNOWN and r.judged == 0
