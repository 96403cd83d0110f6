from __future__ import annotations

import pytest
from histories import HistoryBuilder

from infragym import ConfigError
from infragym.checkers import LostWrites, Verdict
from infragym.history import History


def test_writes_seen_by_final_reads_survive() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, 0.3)
    b.write("y", "a", 0.0, 0.1)
    b.fault("p", 0.5, 1.0)
    b.read("x", 2, 1.5, 1.6)
    b.read("y", "a", 1.5, 1.6)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.PASS
    assert res.score == 1.0
    assert res.metrics["acknowledged"] == 3
    assert res.metrics["final_reads"] == 2


def test_write_acknowledged_then_lost_in_crash_fails() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.fault("crash-n1", 0.5, 1.0, fault="crash")
    b.read("x", None, 1.5, 1.6)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["lost"] == 1
    assert res.score == 0.0
    assert "#0 write 1" in res.explanation
    assert "None" in res.explanation


def test_older_value_in_final_read_loses_only_the_newer_write() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, 0.3)
    b.write("x", 3, 0.4, 0.5)
    b.read("x", 2, 1.0, 1.1)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["lost"] == 1
    assert "#2 write 3" in res.explanation
    assert res.score == pytest.approx(2 / 3)


@pytest.mark.parametrize("winner", [1, 2])
def test_concurrent_writes_either_may_win(winner: int) -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.2)
    b.write("x", 2, 0.1, 0.3)
    b.read("x", winner, 1.0, 1.1)
    assert LostWrites().check(b.build()).verdict is Verdict.PASS


def test_a_later_write_that_timed_out_may_have_superseded() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, 5.0, outcome="info")
    b.read("x", 2, 6.0, 6.1)
    assert LostWrites().check(b.build()).verdict is Verdict.PASS
    b.read("x", None, 6.2, 6.3)  # another final read lost it, but one saw it: survived
    assert LostWrites().check(b.build()).verdict is Verdict.PASS


def test_a_failed_write_cannot_supersede() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, 0.3, outcome="fail")
    b.read("x", 2, 1.0, 1.1)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["lost"] == 1


def test_an_earlier_write_cannot_supersede() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, 0.3)
    b.read("x", 1, 1.0, 1.1)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert "#1 write 2" in res.explanation


def test_a_write_invoked_after_the_final_read_cannot_explain_it() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", 2, 1.0, 1.1)  # returns a value from the future
    b.write("x", 2, 2.0, 2.1)
    assert LostWrites().check(b.build()).verdict is Verdict.FAIL


def test_a_write_invoked_as_the_final_read_completes_may_explain_it() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", 2, 1.0, 1.1)
    b.write("x", 2, 1.1, 1.2)  # touching the read: concurrent, so it may have landed first
    res = LostWrites().check(b.build())
    assert res.metrics["lost"] == 0
    assert res.metrics["unjudged"] == 1  # the second write has no final read after it


def test_phantom_final_value_loses_the_write() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", 99, 1.0, 1.1)
    assert LostWrites().check(b.build()).metrics["lost"] == 1


def test_acknowledged_cas_counts_as_a_write() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.cas("x", 1, 2, 0.2, 0.3)
    b.read("x", 1, 1.0, 1.1)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert "#1 cas [1, 2]" in res.explanation
    b2 = HistoryBuilder()
    b2.write("x", 1, 0.0, 0.1)
    b2.cas("x", 1, 2, 0.2, 0.3)
    b2.read("x", 2, 1.0, 1.1)
    assert LostWrites().check(b2.build()).verdict is Verdict.PASS


def test_server_that_stores_nothing_loses_everything() -> None:
    b = HistoryBuilder()
    for i in range(10):
        b.write(f"k{i % 3}", i, i * 0.1, i * 0.1 + 0.01)
    for k in range(3):
        b.read(f"k{k}", None, 2.0, 2.01)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["lost"] == 10
    assert res.score == 0.0


def test_only_reads_after_the_last_heal_are_final() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", 1, 0.2, 0.3)  # before the fault: not final
    b.fault("p", 1.0, 2.0)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert res.metrics["unjudged"] == 1
    assert "'x'" in res.explanation


def test_an_unjudged_key_makes_the_verdict_unknown() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("y", 1, 0.0, 0.1)
    b.read("x", 1, 1.0, 1.1)
    b.read("y", None, 1.0, 1.1, outcome="fail")  # an error instead of an answer
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert res.score == pytest.approx(0.5)
    assert "'y'" in res.explanation


def test_a_final_read_only_judges_writes_acknowledged_before_it() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", 1, 1.0, 1.1)
    b.write("x", 2, 1.05, 1.2)  # acknowledged after the final read began
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert res.metrics["unjudged"] == 1
    assert res.metrics["lost"] == 0


def test_never_healed_fault_leaves_no_final_phase() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.fault("forever", 0.5, None)
    b.read("x", 1, 1.0, 1.1)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert "never healed" in res.explanation


def test_settle_time_excludes_reads_right_after_the_heal() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.fault("p", 0.5, 1.0)
    b.read("x", None, 1.1, 1.2)
    b.read("x", 1, 3.0, 3.1)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.PASS  # a later final read still saw the write
    only_early = HistoryBuilder()
    only_early.write("x", 1, 0.0, 0.1)
    only_early.fault("p", 0.5, 1.0)
    only_early.read("x", None, 1.1, 1.2)
    assert LostWrites().check(only_early.build()).verdict is Verdict.FAIL
    assert LostWrites(settle_s=0.5).check(only_early.build()).verdict is Verdict.UNKNOWN


def test_nothing_acknowledged_is_unknown() -> None:
    assert LostWrites().check(History()).verdict is Verdict.UNKNOWN
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1, outcome="fail")
    b.read("x", None, 1.0, 1.1)
    res = LostWrites().check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert "no write was acknowledged" in res.explanation


def test_negative_settle_time_is_rejected() -> None:
    with pytest.raises(ConfigError):
        LostWrites(settle_s=-1.0)


def test_counted_keys_alone_make_the_judged_evidence_but_every_key_is_checked() -> None:
    """Overwrites of hot keys vouch for one another, so they are weak evidence of
    durability: with ``counted`` only the write-once keys' judged writes count towards a
    rubric's ``min_judged``, while a lost hot-key write still fails."""
    b = HistoryBuilder()
    for i in range(20):
        b.write("k1", i, 0.01 * i, 0.01 * i + 0.005)
    b.write("c0", "once", 0.3, 0.31)
    b.fault("p", 0.5, 1.0)
    b.read("k1", 19, 1.5, 1.6)
    b.read("c0", "once", 1.5, 1.6)
    history = b.build()
    assert LostWrites().check(history).judged == 21
    res = LostWrites(counted=r"(f\d+)?c\d+").check(history)
    assert res.verdict is Verdict.PASS and res.judged == 1

    lost = HistoryBuilder()
    lost.write("k1", 1, 0.0, 0.1)
    lost.write("c0", "once", 0.2, 0.3)
    lost.fault("p", 0.5, 1.0)
    lost.read("k1", None, 1.5, 1.6)
    lost.read("c0", "once", 1.5, 1.6)
    res = LostWrites(counted=r"c\d+").check(lost.build())
    assert res.verdict is Verdict.FAIL and res.metrics["lost"] == 1 and res.judged == 1


def test_a_bad_counted_pattern_is_rejected() -> None:
    with pytest.raises(ConfigError, match="counted"):
        LostWrites(counted="c(")
