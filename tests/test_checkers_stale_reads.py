from __future__ import annotations

from histories import HistoryBuilder

from infragym.checkers import StaleReads, Verdict
from infragym.history import History


def test_fresh_reads_pass() -> None:
    b = HistoryBuilder()
    b.read("x", None, 0.0, 0.1)  # absent before any write: the initial state
    b.write("x", 1, 0.2, 0.3)
    b.read("x", 1, 0.4, 0.5)
    b.write("x", 2, 0.6, 0.7)
    b.read("x", 2, 0.8, 0.9)
    res = StaleReads().check(b.build())
    assert res.verdict is Verdict.PASS
    assert res.metrics["ok_reads"] == 3
    assert res.metrics["stale"] == 0


def test_stale_read_after_partition_heals_fails() -> None:
    b = HistoryBuilder()
    b.write("x", "old", 0.0, 0.1, node="n1")
    b.fault("isolate-n3", 0.5, 2.0, targets=("n3",))
    b.write("x", "new", 1.0, 1.1, node="n1")
    b.read("x", "old", 2.5, 2.6, node="n3")
    res = StaleReads().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["stale"] == 1
    assert "#2 read -> 'old'" in res.explanation
    assert "#1 write 'new'" in res.explanation
    assert res.score == 0.0


def test_reading_the_old_value_during_a_write_is_not_stale() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, 0.5)
    b.read("x", 1, 0.3, 0.4)  # the new write has not completed
    b.read("x", 1, 0.45, 0.6)  # began before the new write completed
    assert StaleReads().check(b.build()).verdict is Verdict.PASS


def test_overlapping_writes_make_either_value_fresh() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.3)
    b.write("x", 2, 0.1, 0.2)
    b.read("x", 1, 1.0, 1.1)
    b.read("x", 2, 1.2, 1.3)
    assert StaleReads().check(b.build()).verdict is Verdict.PASS


def test_value_of_an_unknown_outcome_write_is_never_stale() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1, outcome="info")
    b.write("x", 2, 0.2, 0.3)
    b.read("x", 1, 5.0, 5.1)  # the info write may have landed late
    assert StaleReads().check(b.build()).verdict is Verdict.PASS


def test_absent_after_an_acknowledged_write_is_stale() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", None, 0.2, 0.3)
    res = StaleReads().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["stale"] == 1


def test_phantom_reads_fail() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", 7, 0.2, 0.3)  # never written
    b.read("y", 1, 0.2, 0.3)  # written, but to another key
    b.read("z", 5, 0.2, 0.3)  # written only after the read returned
    b.write("z", 5, 0.4, 0.5)
    res = StaleReads().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["phantom"] == 3
    assert "never written" in res.explanation


def test_a_write_invoked_as_the_read_completes_is_not_phantom() -> None:
    b = HistoryBuilder()
    b.read("x", 1, 0.4, 0.5)
    b.write("x", 1, 0.5, 0.6)  # touching: concurrent with the read
    assert StaleReads().check(b.build()).verdict is Verdict.PASS


def test_reading_a_failed_write_is_an_aborted_read() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1, outcome="fail")
    b.read("x", 1, 0.2, 0.3)
    res = StaleReads().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["aborted"] == 1


def test_cas_writes_count() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.cas("x", 1, 2, 0.2, 0.3)
    b.read("x", 2, 0.4, 0.5)
    assert StaleReads().check(b.build()).verdict is Verdict.PASS
    b.read("x", 1, 0.6, 0.7)
    assert StaleReads().check(b.build()).metrics["stale"] == 1


def test_unknown_and_failed_reads_are_not_judged() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", 42, 0.2, 0.3, outcome="info")
    b.read("x", 42, 0.2, 0.3, outcome="fail")
    res = StaleReads().check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert "no ok reads" in res.explanation


def test_empty_history_is_unknown() -> None:
    assert StaleReads().check(History()).verdict is Verdict.UNKNOWN


def test_score_is_fraction_of_good_reads() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    for i in range(3):
        b.read("x", 1, 1.0 + i, 1.1 + i)
    b.read("x", None, 5.0, 5.1)
    assert StaleReads().check(b.build()).score == 0.75
