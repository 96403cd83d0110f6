"""The latency-slo task: its checks judge latency from the intended start, errors, headroom
and correctness probes from histories written by hand.

Seed 1 of every tier is graded by tests/test_builtin_tasks.py against the bands of
task.toml; the full seed range runs outside CI (`infragym validate latency-slo --tiers`)
and is quoted in the README.
"""

from __future__ import annotations

import math
import sys
from types import ModuleType
from typing import Any

from histories import HistoryBuilder

from infragym.checkers import Verdict
from infragym.grading import load_grader
from infragym.history import History
from infragym.tasks import find_task, validate_layout

TASK = find_task("latency-slo")


def grader() -> ModuleType:
    return sys.modules[load_grader(TASK).__module__]


def shop_history(
    phases: dict[str, tuple[float, float, float]],
    probes: list[tuple[float, str, str | None]] | None = None,
    late: float = 0.0,
) -> History:
    """``phases``: name to (rate, seconds, latency); each operation invoked ``late`` after
    its intended start (a client held up behind a slow server)."""
    b = HistoryBuilder()
    t0 = 0.0
    for phase, (rate, seconds, latency) in phases.items():
        for i in range(round(rate * seconds)):
            t = t0 + i / rate
            if math.isinf(latency):
                b.op(f"read@{phase}", "7", t=t + late, done=None, intended=t)
            else:
                b.op(f"read@{phase}", "7", t=t + late, done=t + late + latency, intended=t,
                     result=3)  # fmt: skip
        t0 += seconds
    return b.build({"probes": probes or [(float(i), "right", None) for i in range(30)]})


def test_the_task_folder_is_valid() -> None:
    assert validate_layout(TASK.path) == []
    assert set(TASK.spec.apt) == {"nginx-light", "postgresql-15", "python3-psycopg"}
    bands = TASK.spec.validation.bands
    assert {"broken", "naive", "naive-cache", "robust", "robust-own"} <= set(bands)
    assert {"probe-precomputed", "probe-drop-writes", "probe-shed"} <= set(bands)


def test_every_variant_names_one_host_per_tier_with_its_quota() -> None:
    g = grader()
    for seed in range(1, 20):
        v = TASK.spec.variant(seed)
        shop = g.Shop.of(v)
        assert (shop.web, shop.app, shop.db) == ("web1", "app1", "db1")
        assert shop.p99_s == float(v["p99_ms"]) / 1000
        assert set(shop.load_users()).isdisjoint(shop.probe_users())
        opts = v.cluster_options(list(v.host_names), None)
        cpu = {n: lim.cpu for n, lim in opts["host_limits"].items()}
        assert cpu == {"web1": 0.25, "app1": v["app_cores"], "db1": v["db_cores"]}


def scores(h: History, p99_s: float = 0.2) -> dict[str, Any]:
    g = grader()
    return {c.name: c.check(h) for c in g.checkers_for(p99_s)}


def test_a_fast_correct_service_meets_the_objective_with_headroom() -> None:
    g = grader()
    h = shop_history({"target": (50, 20, 0.01), **{f"x{m:g}": (50 * m, 8, 0.02) for m in g.STEPS}})
    r = scores(h)
    assert r["slo"].verdict is Verdict.PASS
    assert r["errors"].verdict is Verdict.PASS
    assert r["headroom"].metrics["multiple"] == max(g.STEPS)
    assert r["correctness"].verdict is Verdict.PASS
    assert g.rubric().score(r | {"functional": _passed()}).reward == 1.0


def test_latency_runs_from_the_intended_start() -> None:
    # answered in 10 ms once invoked, but invoked 0.5 s late: a queue the server built
    r = scores(shop_history({"target": (50, 20, 0.01)}, late=0.5))
    assert r["slo"].verdict is Verdict.FAIL
    assert r["slo"].metrics["p99"] >= 0.5


def test_unanswered_operations_count_as_errors_and_infinitely_slow() -> None:
    b = HistoryBuilder()
    for i in range(1000):
        t = i / 50
        if i % 50 == 0:  # 2 % never answered
            b.op("read@target", "7", t=t, done=None, intended=t)
        else:
            b.op("read@target", "7", t=t, done=t + 0.01, intended=t, result=3)
    r = scores(b.build({"probes": [(0.0, "right", None)] * 30}))
    assert r["errors"].verdict is Verdict.FAIL
    assert r["slo"].verdict is Verdict.FAIL
    assert "errors 2.0%" in r["slo"].explanation


def test_shedding_with_fast_errors_fails_the_error_gate() -> None:
    b = HistoryBuilder()
    for i in range(1000):
        t = i / 50
        outcome = "fail" if i % 5 else "ok"  # 10 of 50 per second served, the rest 503
        b.op("read@target", "7", t=t, done=t + 0.002, intended=t, outcome=outcome, result=3)
    r = scores(b.build({"probes": [(0.0, "right", None)] * 30}))
    assert r["errors"].verdict is Verdict.FAIL
    reward = grader().rubric().score(r | {"functional": _passed()}).reward
    assert reward == 0.0


def test_headroom_is_the_highest_step_meeting_the_objective() -> None:
    g = grader()
    steps = {"x1.5": (75, 8, 0.05), "x2": (100, 8, 0.5), "x3": (150, 8, 2.0)}
    r = scores(shop_history({"target": (50, 20, 0.01), **steps}))
    assert r["headroom"].metrics["multiple"] == 1.5
    reward = g.rubric().score(r | {"functional": _passed()}).reward
    assert 0.8 < reward < 1.0  # full objective, half the headroom


def test_one_wrong_probe_fails_correctness_and_caps_the_reward() -> None:
    g = grader()
    probes: list[tuple[float, str, str | None]] = [(float(i), "right", None) for i in range(40)]
    probes.append((41.0, "wrong", "order 9 placed for user 1900 was not in the next read"))
    r = scores(shop_history({"target": (50, 20, 0.01)}, probes=probes))
    assert r["correctness"].verdict is Verdict.FAIL
    assert "order 9" in r["correctness"].explanation
    assert g.rubric().score(r | {"functional": _passed()}).reward <= g.CORRECTNESS_CAP


def test_unanswered_probes_judge_nothing() -> None:
    probes = [(float(i), "unanswered", "HTTP 503") for i in range(100)]
    probes += [(float(i), "right", None) for i in range(5)]
    r = scores(shop_history({"target": (50, 20, 0.01)}, probes=probes))
    assert r["correctness"].verdict is Verdict.UNKNOWN


def test_served_orders_must_equal_the_database_rows() -> None:
    g = grader()
    body = b'{"user": 5, "orders": [{"id": 1, "item": "a", "qty": 2}]}'
    assert g.served_orders(body, 5) == [[1, "a", 2]]
    assert g.served_orders(body, 6) is None  # another user's answer
    assert g.served_orders(b'{"user": 5}', 5) is None


def _passed() -> Any:
    from infragym.checkers import CheckResult

    return CheckResult("functional", Verdict.PASS, 1.0, "all passed", judged=5)
