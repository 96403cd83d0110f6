"""Property tests: the WGL search agrees with a brute-force oracle on small histories, and
the cheap register checkers never flag a linearizable history."""

from __future__ import annotations

from typing import Any

from histories import HistoryBuilder, brute_linearizable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infragym.checkers import Linearizable, LostWrites, StaleReads, Verdict
from infragym.history import History

SETTINGS = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALUES = st.integers(1, 3)
MAYBE = st.none() | VALUES


@st.composite
def random_histories(draw: st.DrawFn, max_ops: int = 7) -> History:
    """Arbitrary small histories: most are not linearizable, some are."""
    keys = draw(st.sampled_from([("x",), ("x", "y")]))
    b = HistoryBuilder()
    for _ in range(draw(st.integers(1, max_ops))):
        key = draw(st.sampled_from(keys))
        f = draw(st.sampled_from(["read", "read", "write", "cas"]))
        t = float(draw(st.integers(0, 10)))
        done: float | None = t + draw(st.integers(0, 4))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        if outcome == "info" and draw(st.booleans()):
            done = None
        if f == "read":
            b.read(key, draw(MAYBE), t, done, outcome=outcome)
        elif f == "write":
            b.write(key, draw(VALUES), t, done, outcome=outcome)
        else:
            b.cas(key, draw(MAYBE), draw(VALUES), t, done, outcome=outcome)
    return b.build()


@st.composite
def linearizable_histories(draw: st.DrawFn, max_ops: int = 7) -> History:
    """Histories of a real register: every op that takes effect does so at one instant
    inside its interval (info ops: at any time after invocation, or never)."""
    keys = draw(st.sampled_from([("x",), ("x", "y")]))
    specs: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, max_ops))):
        t = draw(st.integers(0, 10))
        dur = draw(st.integers(0, 4))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        if outcome == "ok":
            point: float | None = t + draw(st.floats(0.0, 1.0)) * dur
        elif outcome == "info" and draw(st.booleans()):
            point = t + draw(st.floats(0.0, 8.0))
        else:
            point = None
        specs.append(
            {
                "key": draw(st.sampled_from(keys)),
                "f": draw(st.sampled_from(["read", "write", "cas"])),
                "t": float(t),
                "done": None if outcome == "info" and draw(st.booleans()) else float(t + dur),
                "outcome": outcome,
                "point": point,
                "value": draw(VALUES),
                "expected": draw(MAYBE),
                "result": draw(MAYBE),  # kept only where the register does not decide it
            }
        )
    state: dict[str, Any] = {}
    effective = [s for s in specs if s["point"] is not None]
    for s in sorted(effective, key=lambda s: s["point"]):
        cur = state.get(s["key"])
        if s["f"] == "write":
            state[s["key"]] = s["value"]
        elif s["f"] == "read":
            s["result"] = cur
        elif cur == s["expected"]:
            state[s["key"]] = s["value"]
        elif s["outcome"] == "ok":
            s["outcome"] = "fail"  # the comparison failed: a definite no-op
    b = HistoryBuilder()
    for s in specs:
        kw = {"outcome": s["outcome"]}
        if s["f"] == "read":
            b.read(s["key"], s["result"], s["t"], s["done"], **kw)
        elif s["f"] == "write":
            b.write(s["key"], s["value"], s["t"], s["done"], **kw)
        else:
            b.cas(s["key"], s["expected"], s["value"], s["t"], s["done"], **kw)
    return b.build()


@st.composite
def perturbed_histories(draw: st.DrawFn) -> History:
    """A linearizable history with one read's result changed: near the boundary."""
    hist = draw(linearizable_histories())
    reads = [i for i, e in enumerate(hist.ops) if e.f == "read" and e.type.value != "invoke"]
    if not reads:
        return hist
    i = draw(st.sampled_from(reads))
    ops = list(hist.ops)
    e = ops[i]
    ops[i] = type(e)(e.type, e.id, e.f, e.time, e.key, draw(MAYBE), e.intended, e.node)
    return History(ops=ops)


def _agrees(hist: History) -> bool:
    res = Linearizable().check(hist)
    assert res.verdict is not Verdict.UNKNOWN, res.explanation
    oracle = brute_linearizable(hist.operations())
    assert (res.verdict is Verdict.PASS) == oracle, res.explanation
    return oracle


@SETTINGS
@given(random_histories())
def test_wgl_agrees_with_brute_force_on_random_histories(hist: History) -> None:
    linearizable = _agrees(hist)
    if not linearizable:
        return
    # every read the cheap checkers flag is a linearizability violation
    assert StaleReads().check(hist).verdict is not Verdict.FAIL
    assert LostWrites().check(hist).verdict is not Verdict.FAIL


@SETTINGS
@given(perturbed_histories())
def test_wgl_agrees_with_brute_force_near_the_boundary(hist: History) -> None:
    linearizable = _agrees(hist)
    if linearizable:
        assert StaleReads().check(hist).verdict is not Verdict.FAIL
        assert LostWrites().check(hist).verdict is not Verdict.FAIL


@SETTINGS
@given(linearizable_histories(max_ops=9))
def test_histories_of_a_real_register_pass(hist: History) -> None:
    res = Linearizable().check(hist)
    assert res.verdict is Verdict.PASS, res.explanation
    assert StaleReads().check(hist).verdict is not Verdict.FAIL
    assert LostWrites().check(hist).verdict is not Verdict.FAIL


@settings(max_examples=60, deadline=None)
@given(linearizable_histories(max_ops=40))
def test_larger_real_register_histories_pass(hist: History) -> None:
    assert Linearizable().check(hist).verdict is Verdict.PASS
