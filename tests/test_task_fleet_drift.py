"""The fleet-drift task: its checks judge behaviour from recorded samples and answers.

Seed 1 of every tier and probe is graded by tests/test_builtin_tasks.py against the bands
of task.toml; the full seed range runs outside CI (`infragym validate fleet-drift
--tiers`) and is quoted in the README. These tests run the checks on histories written
by hand: a sample is ``[t, host, converged, why, revision, master pid, worker pids,
files' fingerprint]`` as the grader's sampler records it.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

import pytest

from infragym.checkers import CheckResult, Verdict
from infragym.grading import load_grader
from infragym.history import FaultAction, FaultEvent, History, OpEvent, OpType
from infragym.tasks import find_task, validate_layout

TASK = find_task("fleet-drift")


def grader() -> ModuleType:
    return sys.modules[load_grader(TASK).__module__]


def history(
    samples: list[list[Any]], drifts: list[tuple[float, str, str]] = (), **meta: Any
) -> History:  # type: ignore[assignment]
    h = History()
    h.meta.update({"fleet": ["w1", "w2"], "releases": [], "phase_end": 30.0, "samples": samples})
    h.meta.update(meta)
    for t, host, kind in drifts:
        h.record_fault(FaultEvent(t, "drift", FaultAction.APPLY, f"d-{t}", (host,), {"kind": kind}))
    return h


def steady(
    host: str,
    t0: float,
    t1: float,
    *,
    master: int = 10,
    workers: tuple[int, ...] = (11,),
    ok: bool = True,
    files: str = "f1",
) -> list[list[Any]]:
    out = []
    t = t0
    while t < t1:
        out.append(
            [round(t, 2), host, ok, "" if ok else "x differs", 1, master, list(workers), files]
        )
        t += 0.2
    return out


def test_the_task_folder_is_valid() -> None:
    assert validate_layout(TASK.path) == []
    assert set(TASK.spec.apt) == {"nginx-light", "jq", "curl"}
    bands = TASK.spec.validation.bands
    assert {
        "broken",
        "naive",
        "robust",
        "robust-shell",
        "probe-hammer",
        "probe-gate-only",
        "probe-restart-every-loop",
    } <= set(bands)


def test_convergence_is_timed_per_event() -> None:
    g = grader()
    samples = (steady("w1", 0, 5) + steady("w1", 5.1, 6.3, ok=False) + steady("w1", 6.4, 12)
               + steady("w2", 0, 7) + steady("w2", 7.1, 30, ok=False))  # fmt: skip
    h = history(samples, [(5.0, "w1", "edit-file"), (7.0, "w2", "delete-file")])
    rows = dict((k, v) for k, v, _ in g.convergence(h))
    assert rows["d-5.0@w1"] == pytest.approx(1.4, abs=0.01)
    assert rows["d-7.0@w2"] is None  # never converged before the end
    res: CheckResult = g.Converged().check(h)
    assert res.score == 0.5 and res.verdict is Verdict.FAIL
    t = g.ConvergeTime(3.0).check(h)
    assert t.score == 0.0  # one of two never converged: the p95 is infinite


def test_an_event_the_next_one_interrupts_is_timed_until_the_host_converges() -> None:
    """A release, then a drift on the same host 1 s later, before it caught up: both
    are timed to the host's first converged sample (seed 3's robust-shell, where the
    release was judged never converged though the host converged 3.8 s after it)."""
    g = grader()
    samples = (steady("w1", 0, 10) + steady("w1", 10.1, 13.6, ok=False)
               + steady("w1", 13.7, 30) + steady("w2", 0, 30))  # fmt: skip
    h = history(samples, [(11.0, "w1", "kill-service")], releases=[{"t": 10.0, "revision": 2}])
    rows = dict((k, v) for k, v, _ in g.convergence(h))
    assert rows["release-2@w1"] == pytest.approx(3.7, abs=0.01)
    assert rows["d-11.0@w1"] == pytest.approx(2.7, abs=0.01)
    assert rows["release-2@w2"] == pytest.approx(0.2, abs=0.01)
    assert g.Converged().check(h).score == 1.0


def test_churn_counts_work_on_a_converged_host_with_no_event() -> None:
    g = grader()
    # w1: a new worker (reload) and a rewritten file while converged and nothing happened
    quiet = (
        steady("w1", 0, 2)
        + steady("w1", 2.1, 4, workers=(12,))
        + steady("w1", 4.1, 6, workers=(12,), files="f2")
    )
    # w2: a restart right after a drift (justified) and after a non-converged sample
    after = (
        steady("w2", 0, 3)
        + steady("w2", 3.1, 3.3, ok=False)
        + steady("w2", 3.4, 6, master=20, workers=(21,))
    )
    res = g.Churn().check(history(quiet + after, [(3.05, "w2", "kill-service")]))
    assert res.metrics["reloads"] == 1 and res.metrics["rewrites"] == 1
    assert res.metrics["restarts"] == 0
    # a restart every second on a converged host is churn
    hammer = [s for i in range(10) for s in steady("w1", i, i + 1, master=100 + i)]
    res = g.Churn().check(history(hammer))
    assert res.metrics["restarts"] == 9 and res.verdict is Verdict.FAIL


def read(h: History, i: int, node: str, t: float, body: str, ok: bool = True) -> None:
    h.append(OpEvent(OpType.INVOKE, i, "read", t, "/", None, None, node))
    h.append(OpEvent(OpType.OK if ok else OpType.FAIL, i, "read", t + 0.01, "/", body, None, node))


def test_a_mixed_release_and_a_dropped_request_are_seen_outside_broken_spans() -> None:
    g = grader()
    samples = (
        steady("w1", 0, 10)
        + steady("w2", 0, 4)
        + steady("w2", 4.1, 5, ok=False)
        + steady("w2", 5.1, 10)
    )
    h = history(samples, [(4.0, "w2", "kill-service")])
    read(h, 0, "w1", 1.0, "<html><body>file=r1 config=r1</body></html>")
    read(h, 1, "w1", 2.0, "app=r2 config=r1")
    read(h, 2, "w2", 4.5, "", ok=False)  # inside the span the kill broke: not judged
    read(h, 3, "w1", 6.0, "", ok=False)
    mixed = g.NoMixedRelease().check(h)
    assert mixed.metrics["mixed"] == 1 and mixed.verdict is Verdict.FAIL
    served = g.Served().check(h)
    assert served.metrics["requests"] == 3 and served.metrics["availability"] == pytest.approx(
        2 / 3
    )


@pytest.mark.parametrize(
    ("failed", "cap"),
    [("converged", 0.3), ("churn", 0.2), ("no-partial-state", 0.5), ("collateral", 0.5)],
)
def test_the_rubric_caps_each_failed_gate(failed: str, cap: float) -> None:
    g = grader()
    names = [
        "functional",
        "converged",
        "churn",
        "no-partial-state",
        "collateral",
        "converge-time",
        "availability",
    ]
    results = {
        n: CheckResult(n, Verdict.PASS, 1.0, "ok", {"availability": 1.0}, judged=1000)
        for n in names
    }
    results[failed] = CheckResult(
        failed, Verdict.FAIL, 0.0, "bad", {"availability": 1.0}, judged=1000
    )
    assert g.rubric().score(results).reward <= cap


def test_work_inside_a_colleagues_span_is_not_churn() -> None:
    g = grader()
    # the colleague began at 1.0 and its reload ran until 1.5: the new worker seen at
    # 1.4 (after a converged sample at 1.2) is the colleague's doing
    rows = steady("w1", 0, 1.3) + steady("w1", 1.4, 3, workers=(12,))
    h = history(rows, [(1.0, "w1", "stale-config")])
    h.faults[-1].detail["done"] = 1.5
    assert g.Churn().check(h).metrics["reloads"] == 0
    h.faults[-1].detail["done"] = 1.05  # it ended before: the reload was unprompted
    assert g.Churn().check(h).metrics["reloads"] == 1


def test_a_process_forked_by_the_master_is_not_taken_for_a_new_master() -> None:
    """A worker nginx has just forked keeps the title "nginx: master" for an instant;
    the sampler knows it by its parent (seed 3 counted such a worker as a restart)."""
    import subprocess

    g = grader()
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert g.parent_pid(child.pid) == os.getpid()
        assert g.parent_pid(os.getpid()) == os.getppid()
    finally:
        child.kill()
        child.wait()
    assert g.parent_pid(child.pid) == 0  # gone
