"""The scale-out task: its checks judge behaviour from histories written by hand (per-host
counters, lost and invented counts, a load balancer that never takes the new host, a
service held back on one host), and its hosts come from the variant.

Seed 1 of every tier is graded by tests/test_builtin_tasks.py against the bands of
task.toml; the full seed range runs outside CI (`infragym validate scale-out --tiers`)
and is quoted in the README. So this file grades nothing."""

from __future__ import annotations

import json
import sys
from types import ModuleType
from typing import Any

from histories import HistoryBuilder

from infragym.checkers import CheckResult, Verdict
from infragym.grading import load_grader
from infragym.history import History, OpType
from infragym.tasks import find_task, validate_layout
from infragym.workload import Op, Target

TASK = find_task("scale-out")


def grader() -> ModuleType:
    return sys.modules[load_grader(TASK).__module__]


def test_the_task_folder_is_valid() -> None:
    assert validate_layout(TASK.path) == []
    assert TASK.spec.apt == ("haproxy", "redis-server")
    bands = TASK.spec.validation.bands
    assert {"broken", "naive", "robust", "robust-own", "probe-one-host"} <= set(bands)


def test_the_hosts_come_from_the_variant() -> None:
    g = grader()
    for seed in range(1, 12):
        v = TASK.spec.variant(seed)
        lay = g.Layout.of(v)
        assert lay.apps == tuple(f"{v['app_prefix']}{i}" for i in (1, 2, 3, 4))
        assert lay.lb == "lb1" and lay.state == f"{v['state_prefix']}1"
        # each app host a small machine; the live change needs a third
        assert {v.resources[a].cores for a in lay.apps} == {float(v["app_cores"])}
        assert len(lay.apps) >= max(g.SIZES) >= 3


def test_answers_are_decoded_and_their_faults_named() -> None:
    g = grader()
    lay = g.Layout.of(TASK.spec.variant(1))
    op = Op("visit", Target("lb", "http://198.18.0.1:80"), key="ann")

    def body(user: str, visits: int, token: str | None = None) -> bytes:
        tok = token if token is not None else lay.token(user, visits)
        doc = {"user": user, "visits": visits, "host": "app2", "token": tok}
        return json.dumps(doc).encode()

    checked, unchecked = g.SessionClient(lay), g.SessionClient()
    assert checked.decode(op, 200, body("ann", 3)).value == [3, "app2"]
    assert checked.decode(op, 200, body("bob", 3)).value == [3, "app2", "wrong-user"]
    assert checked.decode(op, 200, body("ann", 3, "00")).value == [3, "app2", "bad-token"]
    assert unchecked.decode(op, 200, body("ann", 3, "00")).value == [3, "app2"]
    assert checked.decode(op, 200, b"ok").value == [None, None, "garbage"]
    assert checked.decode(op, 503, b"").type is OpType.FAIL


def sessions(answers: list[tuple[str, str, int, str]], start: float = 0.0) -> History:
    """(f, user, visits answered, host), one every 10 ms, each answered in 5 ms."""
    b = HistoryBuilder()
    for i, (f, user, n, host) in enumerate(answers):
        t = start + i * 0.01
        b.op(f, user, [n, host], t=t, done=t + 0.005, result=[n, host], intended=t)
    return b.build()


def test_one_counter_per_user_passes() -> None:
    hosts = ["app1", "app2"]
    answers = [("visit", "u1", n, hosts[n % 2]) for n in range(1, 11)]
    answers += [("read", "u1", 10, "app1"), ("visit", "u2", 1, "app2"), ("read", "u2", 1, "app1")]
    result = grader().SessionCheck().check(sessions(answers))
    assert result.verdict is Verdict.PASS, result.explanation
    assert result.judged == 13


def test_counts_kept_per_host_fail() -> None:
    # each host counts on its own (the starter's memory on two hosts): visits repeat
    counts = {"app1": 0, "app2": 0}
    answers = []
    for i in range(6):
        host = f"app{i % 2 + 1}"
        counts[host] += 1
        answers.append(("visit", "u1", counts[host], host))
    result = grader().SessionCheck().check(sessions(answers))
    assert result.verdict is Verdict.FAIL
    assert result.metrics["duplicate"] == 3


def test_lost_and_invented_counts_fail() -> None:
    g = grader()
    lost = sessions([("visit", "u1", 1, "a"), ("visit", "u1", 2, "a"), ("read", "u1", 1, "b")])
    assert g.SessionCheck().check(lost).metrics["lost"] == 1
    invented = sessions([("visit", "u1", 5, "a")])
    assert g.SessionCheck().check(invented).metrics["invented"] == 1
    # a stateless service that answers 1 to everything: duplicates and lost reads
    nothing = sessions([("visit", "u1", 1, "a")] * 3 + [("read", "u1", 1, "a")])
    r = g.SessionCheck().check(nothing)
    assert r.verdict is Verdict.FAIL and r.metrics["duplicate"] == 2


def stepped(rates: dict[int, list[tuple[float, bool]]], p99_s: float = 0.3) -> History:
    """A history of steps at each size: (rate, passed) each with 100 load answers, ok and
    fast when passed, slow when not."""
    b = HistoryBuilder()
    steps: list[dict[str, Any]] = []
    t, op_id = 0.0, 0
    for hosts, ladder in rates.items():
        for rate, passed in ladder:
            first = op_id
            for i in range(100):
                lat = 0.05 if passed else 2 * p99_s
                b.op("read", f"u-{i % 7}", None, t=t, done=t + lat, result=[0, "a"], intended=t)
                t += 0.01
                op_id += 1
            steps.append({"hosts": hosts, "rate": rate, "ids": [first, op_id]})
    h = b.build()
    h.meta["steps"] = steps
    return h


def test_scaling_is_capacity_at_four_over_four_per_host() -> None:
    g = grader()
    good = stepped({1: [(20, True), (25, False)], 2: [(40, True), (50, False)],
                    4: [(64, True), (80, False)]})  # fmt: skip
    r = g.Capacity(0.3).check(good)
    assert r.metrics["rate_1"] == 20 and r.metrics["rate_4"] == 64
    assert r.metrics["efficiency"] == 0.8 and r.verdict is Verdict.PASS
    # held back on one host, to look efficient: the per-host capacity of 2 hosts counts
    held = stepped({1: [(8, True), (10, False)], 2: [(40, True), (50, False)],
                    4: [(64, True), (80, False)]})  # fmt: skip
    assert g.Capacity(0.3).check(held).metrics["efficiency"] == 0.8
    flat = stepped({1: [(20, True), (25, False)], 2: [(20, True), (25, False)],
                    4: [(20, True), (25, False)]})  # fmt: skip
    assert g.Capacity(0.3).check(flat).metrics["efficiency"] == 0.25
    none = stepped({1: [(20, False)]})
    assert g.OneHost(0.3).check(none).verdict is Verdict.FAIL


def change_history(new_serves: list[float], errors: int = 0) -> History:
    """A live change: 200 load answers over 10 s at 20/s; the new host answers those
    intended at ``new_serves`` (seconds); the first ``errors`` fail. Added at 2 s,
    removed at 6 s."""
    b = HistoryBuilder()
    for i in range(200):
        t = i * 0.05
        host = "app3" if any(abs(t - s) < 1e-9 for s in new_serves) else "app1"
        outcome = "fail" if i < errors else "ok"
        b.op("read", f"u-{i % 9}", None, t=t, done=t + 0.04, outcome=outcome,
             result=[0, host], intended=t)  # fmt: skip
    h = b.build()
    h.meta["change"] = {"host": "app3", "added": 2.0, "removed": 6.0, "ids": [0, 200]}
    return h


def test_the_live_change_is_judged() -> None:
    g = grader()
    change = g.Change(0.3)

    def results(h: History) -> dict[str, Any]:
        return {r.name: r for r in change.results(h)}

    good = results(change_history([2.5, 3.0, 4.0]))
    assert all(r.verdict is Verdict.PASS for r in good.values()), good
    static = results(change_history([]))  # the new host never got a request
    assert static["membership"].verdict is Verdict.FAIL
    late = results(change_history([2.5, 7.5]))  # still sent to after its removal
    assert late["membership"].metrics["stale"] == 1
    errors = results(change_history([2.5], errors=10))
    assert errors["change-errors"].metrics["errors"] == 10
    assert errors["change-latency"].verdict is Verdict.FAIL  # 10 of 200 never answered


def test_the_rubric_ranks_the_designs() -> None:
    g = grader()
    good = stepped({1: [(20, True), (25, False)], 2: [(40, True), (50, False)],
                    4: [(80, True), (100, False)]})  # fmt: skip
    flat = stepped({1: [(20, True), (25, False)], 2: [(20, True), (25, False)],
                    4: [(20, True), (25, False)]})  # fmt: skip
    rubric = g.rubric(0.3)

    def reward(steps: History, change: History) -> float:
        results = {c.name: c.check(steps) for c in g.checkers(0.3)[:3]}
        results.update({r.name: r for r in g.Change(0.3).results(change)})
        results["state"] = CheckResult("state", Verdict.PASS, 1.0, "planted", judged=500)
        results["functional"] = CheckResult("functional", Verdict.PASS, 1.0, "")
        return rubric.score(results).reward

    robust = reward(good, change_history([2.5, 3.0]))
    naive = reward(flat, change_history([]))  # a fixed host list: flat, never takes app3
    assert robust == 1.0
    assert naive <= 0.4
