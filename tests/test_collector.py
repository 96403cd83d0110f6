"""Gradings keep full garbage collections short: what existed before is frozen meanwhile."""

from __future__ import annotations

import gc

import pytest

from infragym.grading import _collector
from infragym.grading._collector import longest_pause, quiet_collector


def test_objects_from_before_a_grading_are_skipped_by_its_collections_and_handed_back() -> None:
    before = [[i] for i in range(20_000)]  # tracked containers made before the grading
    frozen0 = gc.get_freeze_count()
    with quiet_collector():
        assert gc.get_freeze_count() >= frozen0 + len(before)
        with quiet_collector():  # a second grading at once
            pass
        assert gc.get_freeze_count() > 0  # still frozen: one grading runs
        gc.collect()
    # the last grading ended: everything is handed back to the collector
    assert gc.get_freeze_count() == 0
    assert _collector.gc.callbacks.count(_collector._timed) == 0
    del before


def test_the_collections_during_a_grading_are_timed() -> None:
    with quiet_collector():
        gc.collect()
    start, took = _collector.PAUSES[-1]
    assert took >= 0
    assert longest_pause(start - 1, start + took + 1) is not None
    assert longest_pause(start + took + 10, start + took + 20) is None


def test_gradings_that_overlap_without_a_break_hand_the_objects_back_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_collector, "MAX_FROZEN_S", 0.0)
    with quiet_collector():
        with quiet_collector():
            assert gc.get_freeze_count() > 0
        # still one grading, but frozen for longer than allowed: garbage may not pile up
        assert gc.get_freeze_count() == 0
    assert gc.get_freeze_count() == 0
