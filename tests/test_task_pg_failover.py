"""The pg-failover task: its checkers catch lost commits (from a recorded grading of the
naive tier) and a planted split brain, its tier is named by the variant, and a grading
stopped at any point (Ctrl-C, kill -9 then `infragym cleanup`) or failing leaves no
postgres, etcd or patroni process and no namespace behind.

The full seed range of every tier runs outside CI (`infragym validate pg-failover
--tiers`, quoted in the README); tests/test_builtin_tasks.py grades seed 1 of the tiers
it lists against task.toml's bands.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest
from conftest import assert_no_leftovers, needs_root, recording_clusters
from histories import HistoryBuilder

from infragym.checkers import DualPrimary, LostInserts, TotalInvariant, Verdict
from infragym.grading import grade_workspace, load_grader
from infragym.history import Clock, History
from infragym.sandbox import _state
from infragym.tasks import find_task, validate_layout

TASK = find_task("pg-failover")
REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "tasks" / "pg-naive-lost-commits.jsonl"


def grader() -> ModuleType:
    return sys.modules[load_grader(TASK).__module__]


def test_the_task_folder_is_valid() -> None:
    assert validate_layout(TASK.path) == []
    assert set(TASK.spec.apt) >= {"postgresql-15", "patroni", "etcd-server"}
    bands = TASK.spec.validation.bands
    assert {"broken", "naive", "robust", "probe-single", "probe-fake-commit",
            "probe-write-all"} <= set(bands)  # fmt: skip


def test_the_hosts_and_the_schedule_come_from_the_variant() -> None:
    g = grader()
    for seed in range(1, 20):
        v = TASK.spec.variant(seed)
        db = g.Db.of(v)
        assert db.hosts == tuple(f"{v['db_prefix']}{i}" for i in (1, 2, 3))
        assert v.host_names == v.dev_host_names == db.hosts
        schedule = g.schedule_of(db)
        # every fault outlasts the RTO, hits the host in its role when it fires, one at a time
        assert [f.label for f in schedule.faults] == [label for label, *_ in g.FAULTS]
        assert all(f.duration > db.rto_s for f in schedule.faults)
        assert all(f.spec.targets[0].startswith("@") for f in schedule.faults)
        ends = [f.at + f.duration for f in schedule.faults]
        assert all(f.at > end for f, end in zip(schedule.faults[1:], ends, strict=False))
        info = db.conninfo(["198.18.0.1", "198.18.0.2", "198.18.0.3"])
        assert "host='198.18.0.1,198.18.0.2,198.18.0.3'" in info
        assert "target_session_attrs='read-write'" in info


def test_the_lost_commit_checker_catches_the_naive_tiers_lost_rows() -> None:
    """Recorded from a grading of the naive tier (trimmed): db2 acknowledged inserts after
    it promoted itself, and they were gone from the primary the clients found at the end."""
    history = History.read_jsonl(GOLDEN)
    r = LostInserts().check(history)
    assert r.verdict is Verdict.FAIL
    assert r.metrics["lost"] == 60 and r.metrics["acknowledged"] == 120
    lost_nodes = {op.node for op in history.operations() if op.ok
                  and op.value not in set(history.meta["final_ids"])}  # fmt: skip
    assert lost_nodes == {"db2"}
    reward = grader().recheck(history)
    assert reward.reward <= 0.1
    # the same history with every acknowledged row present passes
    every = [op.value for op in history.operations()]
    kept = History(
        ops=history.ops, faults=history.faults, meta={**history.meta, "final_ids": every}
    )
    assert LostInserts().check(kept).verdict is Verdict.PASS


def inserts(b: HistoryBuilder, node: str, start: float, end: float, step: float = 0.05) -> None:
    t = start
    while t < end:
        b.op("insert", None, int(t * 1000), t=t, done=t + 0.01, intended=t, node=node)
        t += step


def test_the_dual_primary_checker_catches_a_planted_split_brain() -> None:
    # a clean failover: db1 until 10 s, nothing while the replica takes over, db2 from 16 s
    b = HistoryBuilder()
    inserts(b, "db1", 0.0, 10.0)
    inserts(b, "db2", 16.0, 30.0)
    polls = [[t / 10, ["db1"] if t < 100 else ["db2"]] for t in range(0, 300, 3)]
    clean = b.build({"primary_polls": polls})
    assert DualPrimary().check(clean).verdict is Verdict.PASS
    # planted: db1 comes back at 20 s as a primary and takes writes while db2 still does
    b = HistoryBuilder()
    inserts(b, "db1", 0.0, 10.0)
    inserts(b, "db2", 16.0, 30.0)
    inserts(b, "db1", 20.0, 30.0, step=0.5)
    split = b.build({"primary_polls": polls})
    r = DualPrimary().check(split)
    assert r.verdict is Verdict.FAIL and r.metrics["ack_pairs"] > 0
    assert "db1" in r.explanation and "db2" in r.explanation


def test_two_self_declared_primaries_count_only_when_both_acknowledge() -> None:
    b = HistoryBuilder()
    b.op("insert", None, 1, t=9.0, done=9.2, intended=9.0, node="db1")
    b.op("insert", None, 2, t=10.7, done=10.8, intended=10.7, node="db2")
    both = [[10.0, ["db1", "db2"]]]
    # a fenced old primary: it calls itself primary at 10 s but its last ack was long ago
    b2 = HistoryBuilder()
    b2.op("insert", None, 1, t=1.0, done=1.2, intended=1.0, node="db1")
    b2.op("insert", None, 2, t=10.7, done=10.8, intended=10.7, node="db2")
    assert DualPrimary().check(b2.build({"primary_polls": both})).verdict is Verdict.PASS
    # acks 1.6 s apart (no pair), but a poll between them saw both primaries
    r = DualPrimary().check(b.build({"primary_polls": both}))
    assert r.verdict is Verdict.FAIL and r.metrics["dual_polls"] == 1


def test_hosts_that_stay_primary_are_a_split_brain_even_unacknowledged() -> None:
    """Three independent primaries: the clients only ever write to the first (the others
    lack the tables), so no two acknowledge, but every poll finds them all primary.
    A failover's overlap (an old primary still calling itself primary for 5 s) passes."""
    b = HistoryBuilder()
    inserts(b, "db1", 0.0, 30.0)
    every = [[t / 10, ["db1", "db2", "db3"]] for t in range(0, 300, 3)]
    r = DualPrimary(persist_s=10.0).check(b.build({"primary_polls": every}))
    assert r.verdict is Verdict.FAIL and r.metrics["dual_run_s"] >= 29.0
    assert DualPrimary().check(b.build({"primary_polls": every})).verdict is Verdict.PASS
    overlap = [[t / 10, ["db1", "db2"] if 100 <= t < 150 else ["db1"]] for t in range(0, 300, 3)]
    r = DualPrimary(persist_s=10.0).check(b.build({"primary_polls": overlap}))
    assert r.verdict is Verdict.PASS and r.metrics["dual_run_s"] < 5.0


def test_recovery_counts_only_writes_answered_before_the_fault_healed() -> None:
    """A crashed primary that nobody replaces: the clients' writes time out until the host
    restarts at the heal (13 s in), and then the ones still waiting (issued up to 5 s
    earlier) succeed at once. By issue time writes look back 8 s in; no failover
    happened, and recovery says so. A failover at 6 s passes."""
    recovery = grader().Recovery(rto_s=10.0)

    def crashed(failover_at: float | None) -> History:
        b = HistoryBuilder()
        b.fault("crash-primary", 10.0, 23.0, fault="crash", targets=("db1",))
        for i in range(400):
            t = 5.0 + i * 0.05
            if t < 10.0:
                done, node = t + 0.01, "db1"
            elif failover_at is not None and t >= 10.0 + failover_at:
                done, node = t + 0.01, "db2"
            elif t >= 23.0 - 5.0:  # waited for the restart
                done, node = max(23.2, t + 0.01), "db1"
            else:
                b.op("insert", None, i, t=t, done=t + 5.0, intended=t, outcome="fail")
                continue
            b.op("insert", None, i, t=t, done=done, intended=t, node=node)
        return b.build()

    r = recovery.check(crashed(None))
    assert r.verdict is Verdict.FAIL and r.metrics["crash-primary.recovery_s"] is None
    r = recovery.check(crashed(6.0))
    assert r.verdict is Verdict.PASS
    assert r.metrics["crash-primary.recovery_s"] == pytest.approx(6.0, abs=0.25)


def test_recovery_is_timed_by_answers_not_by_when_the_waiting_writes_were_issued() -> None:
    """A failover 13 s in, RTO 10 s: the writes issued in the 5 s before it wait (the
    clients' timeout is 5 s) and are answered the moment it happens. Timed by issue alone
    they put writes back at 8 s, inside the RTO; each must be answered within 2 s of
    being issued, so the failover is measured at ~11 s (the last writes answered in time
    were issued 2 s before it) and fails. The same failover 7 s in passes."""
    recovery = grader().Recovery(rto_s=10.0)

    def failover(at: float) -> History:
        b = HistoryBuilder()
        b.fault("pause-primary", 10.0, 25.0, fault="pause", targets=("db1",))
        for i in range(400):
            t = 5.0 + i * 0.05
            if t < 10.0:
                b.op("insert", None, i, t=t, done=t + 0.01, intended=t, node="db1")
            elif t >= 10.0 + at - 5.0:  # waits for the new primary, or is answered at once
                done = max(10.0 + at, t + 0.01)
                b.op("insert", None, i, t=t, done=done, intended=t, node="db2")
            else:
                b.op("insert", None, i, t=t, done=t + 5.0, intended=t, outcome="fail")
        return b.build()

    r = recovery.check(failover(13.0))
    assert r.verdict is Verdict.FAIL
    assert r.metrics["pause-primary.recovery_s"] == pytest.approx(11.0, abs=0.25)
    r = recovery.check(failover(7.0))
    assert r.verdict is Verdict.PASS
    assert r.metrics["pause-primary.recovery_s"] == pytest.approx(5.0, abs=0.25)


def test_a_primary_cut_off_that_goes_on_acknowledging_is_no_recovery() -> None:
    """Nothing fails over: the cut-off primary db1 (the clients still reach it) keeps
    acknowledging every write (asynchronously, its replicas gone). Its answers are not a
    recovery; the same answers from db2 after a failover at 4 s are."""
    recovery = grader().Recovery(rto_s=10.0)
    cut = {"blocked": {"db1": ["db2", "db3"]}}

    def isolated(answered_by: str) -> History:
        b = HistoryBuilder()
        b.fault("isolate-primary", 10.0, 23.0, fault="partition", targets=("db1",), detail=cut)
        for i in range(300):
            t = 8.0 + i * 0.05
            node = "db1" if t < 14.0 else answered_by
            b.op("insert", None, i, t=t, done=t + 0.01, intended=t, node=node)
        return b.build()

    r = recovery.check(isolated("db1"))
    assert r.verdict is Verdict.FAIL and r.metrics["isolate-primary.recovery_s"] is None
    r = recovery.check(isolated("db2"))
    assert r.verdict is Verdict.PASS
    assert r.metrics["isolate-primary.recovery_s"] == pytest.approx(4.0, abs=0.25)


def test_a_primary_failure_the_grader_could_not_aim_counts_as_never_recovered() -> None:
    """No host took writes or called itself primary when the fault fired (the nemesis
    records it skipped): the window is not left out, it failed."""
    b = HistoryBuilder()
    b.fault("crash-primary", 10.0, 23.0, fault="crash", targets=("db1",))
    b.fault("pause-primary", 30.0, 43.0, fault="pause", targets=(), detail={"skipped": True})
    for i in range(700):
        t = 8.0 + i * 0.05
        node = "db1" if t < 13.0 else "db2"
        b.op("insert", None, i, t=t, done=t + 0.01, intended=t, node=node)
    r = grader().Recovery(rto_s=10.0).check(b.build())
    assert r.verdict is Verdict.FAIL and r.score == pytest.approx(0.5)
    assert r.metrics["pause-primary.recovery_s"] is None


def test_a_host_acknowledging_writes_is_a_primary_whatever_the_polls_say() -> None:
    """A decoy: the polls find only db3 primary (a read-only instance, or a lie), while the
    clients' writes land on db1 all along. Merged with the acknowledgements the polls show
    two primaries for 12 s, past persist_s; writes on db3 itself, as polled, pass."""

    def decoy(writer: str) -> History:
        b = HistoryBuilder()
        for i in range(240):
            t = i * 0.05
            b.op("insert", None, i, t=t, done=t + 0.01, intended=t, node=writer)
        polls = [[i * 0.3, ["db3"]] for i in range(40)]
        return b.build({"primary_polls": polls})

    checker = DualPrimary(writes=("insert",), persist_s=10.0)
    r = checker.check(decoy("db1"))
    assert r.verdict is Verdict.FAIL and r.metrics["dual_run_s"] >= 10.0
    assert checker.check(decoy("db3")).verdict is Verdict.PASS


class _Conn:
    """What the clients' pool does with a connection: close it (the pool's bookkeeping is
    what is under test; the real driver is graded in test_builtin_tasks)."""

    closed = False

    async def close(self) -> None:
        self.closed = True


def test_the_clients_close_every_connection_whatever_became_of_its_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CI caught a psycopg connection collected while open (a ResourceWarning that fails
    the test it lands in): a lost connection whose close was still queued when the
    clients closed, and a connection handed to an operation cancelled before it ran."""
    g = grader()
    db = g.Db.of(TASK.spec.variant(1))

    async def connect(info: str, **kwargs: object) -> _Conn:
        return _Conn()

    monkeypatch.setattr(g.psycopg.AsyncConnection, "connect", connect)

    async def scenario() -> tuple[_Conn, _Conn, list[object]]:
        c = g.Clients(db, dict.fromkeys(db.hosts, "198.18.0.1"), History(), Clock())
        c._grow = lambda: None  # no connecting: the test hands connections in itself
        lost, handed = await c.connect(), await c.connect()
        c._open = 2
        c.lose(lost)  # its close queued, then the clients close at once
        op = asyncio.ensure_future(c.acquire())
        await asyncio.sleep(0)  # the operation waits for a connection
        c.release(handed)
        op.cancel()  # handed one, cancelled before it ran
        with pytest.raises(asyncio.CancelledError):
            await op
        idle = list(c.idle)
        await c.close()
        return lost, handed, idle

    lost, handed, idle = asyncio.run(scenario())
    assert idle == [handed], "the cancelled operation's connection went nowhere"
    assert lost.closed and handed.closed


def test_the_total_invariant_fails_on_any_other_total() -> None:
    b = HistoryBuilder()
    for i in range(5):
        b.op("snapshot", None, [16, 16000], t=i, done=i + 0.1, intended=i)
    assert TotalInvariant(16000, index=1).check(b.build()).verdict is Verdict.PASS
    b.op("snapshot", None, [16, 15950], t=6, done=6.1, intended=6, node="db2")
    r = TotalInvariant(16000, index=1).check(b.build())
    assert r.verdict is Verdict.FAIL and "15950" in r.explanation and "db2" in r.explanation


def test_lost_inserts_wants_the_final_state_and_flags_invented_rows() -> None:
    b = HistoryBuilder()
    b.op("insert", None, 1, t=0, done=0.1, intended=0)
    b.op("insert", None, 2, t=1, done=1.1, intended=1, outcome="info")
    assert LostInserts().check(b.build()).verdict is Verdict.UNKNOWN
    assert LostInserts().check(b.build({"final_ids": [1, 2]})).verdict is Verdict.PASS
    assert LostInserts().check(b.build({"final_ids": [1]})).verdict is Verdict.PASS  # info
    r = LostInserts().check(b.build({"final_ids": [1, 99]}))
    assert r.verdict is Verdict.FAIL and r.metrics["phantom"] == 1


# -- nothing left behind -------------------------------------------------------------------

GRADE_ONE = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from infragym.grading import grade_workspace
    from infragym.tasks import find_task
    task = find_task("pg-failover")
    def progress(msg):
        print(msg, flush=True)
    asyncio.run(grade_workspace(task, task.solution("robust"), 1, Path(sys.argv[1]),
                                progress=progress))
    """
)
DB_PROCESSES = ("postgres", "etcd", "patroni")


def db_processes(run_id: str) -> list[str]:
    """postgres, etcd and patroni processes in ``run_id``'s cgroups."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroup = (proc / "cgroup").read_text()
            comm = (proc / "comm").read_text().strip()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if run_id in cgroup and (comm in DB_PROCESSES or "patroni" in cmd):
            found.append(f"{proc.name} {comm}")
    return found


def start_grading(out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", GRADE_ONE, str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip


def in_load_phase(proc: subprocess.Popen[str], within: float = 240.0) -> list[str]:
    """Waits for ``proc``'s grading to start its load, then 8 s more (the primary crashed,
    a replica taking over); its run ids, each with database processes running."""
    assert proc.stdout is not None
    deadline = time.monotonic() + within
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("load for") or time.monotonic() > deadline:
            break
    assert any(line.startswith("load for") for line in seen), "".join(seen[-20:])
    time.sleep(8.0)
    run_ids = [r.run_id for r in _state.all_records() if r.owner_pid == proc.pid]
    assert run_ids, "the grading made no cluster"
    assert any(db_processes(r) for r in run_ids), "no postgres, etcd or patroni ran"
    return run_ids


@needs_root
@pytest.mark.timeout(500)
def test_ctrl_c_or_kill_9_then_cleanup_in_the_load_phase_leave_nothing(tmp_path: Path) -> None:
    """Two gradings at once (the suite's time): one gets Ctrl-C in its load phase and must
    leave nothing by itself; the other is killed with SIGKILL and `infragym cleanup`
    must then remove what it left."""
    interrupted, killed = start_grading(tmp_path / "a"), start_grading(tmp_path / "b")

    def stop(proc: subprocess.Popen[str], sig: signal.Signals) -> list[str]:
        # each as soon as it is in its load phase (admission control may start one later)
        run_ids = in_load_phase(proc)
        os.killpg(proc.pid, sig)
        proc.communicate(timeout=90)
        return run_ids

    try:
        with ThreadPoolExecutor(2) as pool:
            a = pool.submit(stop, interrupted, signal.SIGINT)
            b = pool.submit(stop, killed, signal.SIGKILL)
            runs_a, runs_b = a.result(), b.result()
    finally:
        for proc in (interrupted, killed):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    for run_id in runs_a:  # before any cleanup: the interrupted grading's own teardown
        assert db_processes(run_id) == []
        assert_no_leftovers(run_id)
    out = subprocess.run(
        [sys.executable, "-m", "infragym.cli.main", "cleanup"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    for run_id in runs_b:
        assert db_processes(run_id) == []
        assert_no_leftovers(run_id)


@needs_root
@pytest.mark.timeout(300)
def test_a_failed_grading_leaves_nothing(tmp_path: Path) -> None:
    """broken runs postgres on a unix socket only: no primary within 40 s, reward 0."""
    with recording_clusters() as run_ids:
        result = asyncio.run(grade_workspace(TASK, TASK.solution("broken"), 1, tmp_path))
    assert result.error is None and result.reward == 0.0
    assert "reached no primary" in " ".join(result.notes)
    assert run_ids
    for run_id in run_ids:
        assert db_processes(run_id) == []
        assert_no_leftovers(run_id)
