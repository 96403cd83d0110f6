from __future__ import annotations

import dataclasses
import random
import time
from types import SimpleNamespace

import pytest
from histories import HistoryBuilder, brute_linearizable

from infragym import ConfigError
from infragym.checkers import Linearizable, Verdict, run_checker
from infragym.checkers import _linearizable as lin_module
from infragym.history import History


def _verdict(b: HistoryBuilder, **kw: object) -> Verdict:
    hist = b.build()
    res = Linearizable(**kw).check(hist)  # type: ignore[arg-type]
    assert (res.verdict is Verdict.PASS) == brute_linearizable(hist.operations())
    return res.verdict


def test_sequential_register_passes() -> None:
    b = HistoryBuilder()
    b.read("x", None, 0.0, 0.1)
    b.write("x", 1, 0.2, 0.3)
    b.read("x", 1, 0.4, 0.5)
    b.cas("x", 1, 2, 0.6, 0.7)
    b.read("x", 2, 0.8, 0.9)
    res = Linearizable().check(b.build())
    assert res.verdict is Verdict.PASS
    assert res.score == 1.0
    assert res.metrics["keys"] == 1
    assert res.metrics["ops_checked"] == 5


@pytest.mark.parametrize("seen", [1, 2])
def test_concurrent_writes_either_order(seen: int) -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 1.0)
    b.write("x", 2, 0.5, 1.5)
    b.read("x", seen, 2.0, 2.1)
    b.read("x", seen, 2.2, 2.3)
    assert _verdict(b) is Verdict.PASS


def test_reads_cannot_flip_back_after_writes_settle() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 1.0)
    b.write("x", 2, 0.5, 1.5)
    b.read("x", 1, 2.0, 2.1)
    b.read("x", 2, 2.2, 2.3)
    assert _verdict(b) is Verdict.FAIL


def test_reads_concurrent_with_a_write_must_not_go_back() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 1.0, 2.0)
    b.read("x", 2, 1.1, 1.2)
    b.read("x", 1, 1.3, 1.4)  # after seeing 2, the old value is gone
    assert _verdict(b) is Verdict.FAIL
    b2 = HistoryBuilder()
    b2.write("x", 1, 0.0, 0.1)
    b2.write("x", 2, 1.0, 2.0)
    b2.read("x", 1, 1.1, 1.2)
    b2.read("x", 2, 1.3, 1.4)
    assert _verdict(b2) is Verdict.PASS


@pytest.mark.parametrize("took_effect", [True, False])
def test_info_write_may_or_may_not_take_effect(took_effect: bool) -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, 1.0, outcome="info")
    b.read("x", 2 if took_effect else 1, 3.0, 3.1)
    assert _verdict(b) is Verdict.PASS


def test_info_write_takes_effect_at_most_once() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, None)  # never completed
    b.read("x", 2, 1.0, 1.1)
    b.write("x", 3, 1.2, 1.3)
    b.read("x", 2, 1.4, 1.5)  # 2 cannot come back after 3
    assert _verdict(b) is Verdict.FAIL


def test_info_write_cannot_take_effect_before_its_invocation() -> None:
    b = HistoryBuilder()
    b.read("x", 5, 0.0, 0.1)
    b.write("x", 5, 0.2, 0.3, outcome="info")
    assert _verdict(b) is Verdict.FAIL


def test_failed_operations_did_not_take_effect() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.write("x", 2, 0.2, 0.3, outcome="fail")
    b.read("x", 2, 0.4, 0.5)
    assert _verdict(b) is Verdict.FAIL
    b2 = HistoryBuilder()
    b2.write("x", 1, 0.0, 0.1)
    b2.cas("x", 1, 2, 0.2, 0.3, outcome="fail")
    b2.read("x", 1, 0.4, 0.5)
    assert _verdict(b2) is Verdict.PASS


def test_cas_must_see_its_expected_value() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.cas("x", 2, 3, 0.2, 0.3)
    assert _verdict(b) is Verdict.FAIL


def test_stale_read_after_partition_heals_fails_with_witness() -> None:
    b = HistoryBuilder()
    b.write("x", "old", 0.0, 0.1, node="n1")
    b.fault("isolate-n3", 0.5, 2.0, targets=("n3",))
    b.write("x", "new", 1.0, 1.1, node="n1")
    b.read("x", "old", 2.5, 2.6, node="n3")
    b.write("y", 1, 0.0, 0.1)
    b.read("y", 1, 0.2, 0.3)
    res = Linearizable().check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["keys_failed"] == 1
    assert res.metrics["keys_passed"] == 1
    assert res.metrics["failed_keys"] == "'x'"
    assert res.score == 0.5
    witness = str(res.metrics["witness"])
    assert "key 'x'" in witness
    assert "#2 read -> 'old'" in witness
    assert "'new'" in witness


def test_witness_is_the_deepest_partial_linearization() -> None:
    b = HistoryBuilder()
    b.write("x", 2, 0.0, 1.5)
    b.write("x", 1, 0.5, 1.0)
    b.read("x", 2, 2.0, 2.1)
    b.read("x", 2, 2.2, 2.3)
    b.read("x", 1, 3.0, 3.1)  # the culprit; the first order tried fails earlier, on #2
    witness = str(Linearizable().check(b.build()).metrics["witness"])
    assert "after linearizing 4 ops" in witness
    assert witness.endswith("can place #4 read -> 1 (ok, 3.000-3.100s)")


def test_lost_write_after_crash_fails() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.fault("crash", 0.5, 1.0, fault="crash")
    b.read("x", None, 1.5, 1.6)
    assert _verdict(b) is Verdict.FAIL


def test_store_nothing_server_fails() -> None:
    b = HistoryBuilder()
    for i in range(20):
        b.write("k", i, i * 0.1, i * 0.1 + 0.01)
        b.read("k", None, i * 0.1 + 0.05, i * 0.1 + 0.06)
    assert Linearizable().check(b.build()).verdict is Verdict.FAIL


def test_initial_value_is_configurable() -> None:
    b = HistoryBuilder()
    b.read("x", 0, 0.0, 0.1)
    assert Linearizable().check(b.build()).verdict is Verdict.FAIL
    assert Linearizable(initial=0).check(b.build()).verdict is Verdict.PASS


def test_touching_operations_are_concurrent() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 1.0)
    b.read("x", None, 1.0, 2.0)  # invoked at the instant the write completed
    assert _verdict(b) is Verdict.PASS


def test_state_budget_gives_unknown_naming_the_key() -> None:
    b = HistoryBuilder()
    for i in range(6):
        b.write("x", i, 0.0, 1.0)
    b.read("x", 3, 2.0, 2.1)
    res = Linearizable(max_states=3).check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert res.metrics["keys_unknown"] == 1
    assert res.metrics["unknown_keys"] == "'x'"
    assert "max_states" in res.explanation
    assert Linearizable().check(b.build()).verdict is Verdict.PASS


def test_a_definite_failure_outranks_unknown_keys() -> None:
    b = HistoryBuilder()
    for i in range(6):
        b.write("a", i, 0.0, 1.0)
    b.read("a", 3, 2.0, 2.1)
    b.write("b", 1, 0.0, 0.1)
    b.read("b", 2, 0.2, 0.3)
    res = Linearizable(max_states=3).check(b.build())
    assert res.verdict is Verdict.FAIL
    assert res.metrics["keys_unknown"] == 1


def test_time_budget_gives_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(lin_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    b = HistoryBuilder()
    b.write("x", 1, 0.0, 0.1)
    b.read("x", 1, 0.2, 0.3)
    res = Linearizable(time_budget_s=1.0).check(b.build())
    assert res.verdict is Verdict.UNKNOWN
    assert "time budget" in res.explanation


def test_unrelated_operations_are_ignored() -> None:
    b = HistoryBuilder()
    b.op("request", None, t=0.0, done=0.1)
    assert Linearizable().check(b.build()).verdict is Verdict.UNKNOWN
    b.write("x", 1, 0.2, 0.3)
    res = Linearizable().check(b.build())
    assert res.verdict is Verdict.PASS
    assert res.metrics["ignored_ops"] == 1


def test_only_unknown_outcomes_is_trivially_linearizable() -> None:
    b = HistoryBuilder()
    b.write("x", 1, 0.0, None)
    b.read("x", 9, 0.0, 0.1, outcome="info")
    assert Linearizable().check(b.build()).verdict is Verdict.PASS


def test_empty_history_is_unknown() -> None:
    res = run_checker(Linearizable(), History())
    assert res.verdict is Verdict.UNKNOWN
    assert "no read/write/cas" in res.explanation


@pytest.mark.parametrize("kw", [{"time_budget_s": 0}, {"max_states": 0}])
def test_bad_configuration_is_rejected(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Linearizable(**kw)  # type: ignore[arg-type]


def _simulated(n_keys: int, n_ops: int, clients: int, seed: int) -> HistoryBuilder:
    """A real register under concurrent clients: each op takes effect inside its interval."""
    rng = random.Random(seed)
    b = HistoryBuilder()
    events: list[tuple[float, str, str, int, float, float]] = []
    free = [0.0] * clients
    for i in range(n_ops):
        c = rng.randrange(clients)
        start = free[c] + rng.uniform(0.0, 0.01)
        end = start + rng.uniform(0.001, 0.05)
        free[c] = end
        point = rng.uniform(start, end)
        events.append((point, f"k{rng.randrange(n_keys)}", rng.choice("rw"), i, start, end))
    state: dict[str, int | None] = {}
    for point, key, kind, i, start, end in sorted(events):
        del point
        if kind == "w":
            state[key] = i
            b.write(key, i, start, end)
        else:
            b.read(key, state.get(key), start, end)
    return b


def test_many_keys_and_many_operations_are_checked_quickly() -> None:
    hist = _simulated(n_keys=20, n_ops=4000, clients=8, seed=7).build()
    t0 = time.monotonic()
    res = Linearizable().check(hist)
    elapsed = time.monotonic() - t0
    assert res.verdict is Verdict.PASS, res.explanation
    assert res.metrics["keys"] == 20
    assert elapsed < 20.0  # a safety limit, not a benchmark


def test_long_single_key_history_with_concurrency() -> None:
    hist = _simulated(n_keys=1, n_ops=1500, clients=6, seed=3).build()
    res = Linearizable().check(hist)
    assert res.verdict is Verdict.PASS, res.explanation
    # corrupt one late read: the search must still find the violation
    ops = list(hist.ops)
    idx = max(i for i, e in enumerate(ops) if e.f == "read" and e.type.value == "ok")
    ops[idx] = dataclasses.replace(ops[idx], value=-1)
    bad = History(ops=ops)
    assert Linearizable().check(bad).verdict is Verdict.FAIL
