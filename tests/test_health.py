"""Grading judges its own machine: an overloaded grade is a platform failure, never a score,
and the check does not excuse a system under test that is merely slow.

The gradings are real: the robust kv-replicated reference while CPU hogs saturate the
machine, a correct but slow service (each answer 1.5 s late, the client gives up at 1 s) on
an otherwise calm machine, and a kv-replicated system whose hosts burn the CPU themselves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import needs_root
from tinytask import tiny_task

from infragym.grading import LIMITS, Admission, Capacity, GradeResult, Health, grade_workspace
from infragym.history import FaultAction, FaultEvent, History, OpEvent, OpType
from infragym.tasks import find_task, load_task

HOGS = 16
HOG_S = 120  # each hog ends itself after this long, whatever happens to the test
HOG = f"import time\nend = time.monotonic() + {HOG_S}\nwhile time.monotonic() < end:\n    pass\n"


def read_psi_total() -> int | None:
    """Microseconds some task waited for a CPU since boot (None without PSI)."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(some.rpartition("total=")[2])


def saturated(within: float) -> None:
    """Wait until some task waits for a CPU nearly all the time (the hogs are all busy)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        t0, v0 = time.monotonic(), read_psi_total()
        time.sleep(0.5)
        t1, v1 = time.monotonic(), read_psi_total()
        if v0 is None or v1 is None or (v1 - v0) / 1e6 / (t1 - t0) >= 0.98:
            return


@pytest.fixture
def cpu_hogs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """HOGS busy processes (more than the machine has cores); each one is killed at the end."""
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(HOGS):
            hogs.append(subprocess.Popen([sys.executable, "-c", HOG]))
        saturated(within=15.0)
        yield hogs
    finally:
        for p in hogs:
            p.kill()
        for p in hogs:
            p.wait()


@needs_root
def test_overloaded_grading_is_a_platform_failure_not_a_score(
    tmp_path: Path, cpu_hogs: list[subprocess.Popen[bytes]]
) -> None:
    task = find_task("kv-replicated")
    r = asyncio.run(grade_workspace(task, task.solution("robust"), 1, tmp_path / "art"))
    assert all(p.poll() is None for p in cpu_hogs), "the hogs ended before the grading did"
    assert r.reward is None, f"an overloaded grading returned a score: {r.reward}"
    assert r.overloaded, r.error
    assert r.error is not None and r.error.startswith("grading overloaded:"), r.error
    assert r.health is not None and r.health["overloaded"]
    # the rubric's verdict is kept for diagnosis, never as the reward
    assert r.withheld_reward is not None


# busy loops on the host itself (each ends after HOG_S), then the naive server
BURNING_START = f"""#!/bin/sh
for i in 1 2 3; do
    /usr/bin/python3 -c 'import time
end = time.monotonic() + {HOG_S}
while time.monotonic() < end:
    pass' &
done
exec /usr/bin/python3 /srv/app/server.py
"""


@needs_root
def test_a_system_that_burns_the_cpu_itself_is_scored_not_excused(tmp_path: Path) -> None:
    task = find_task("kv-replicated")
    ws = tmp_path / "ws"
    shutil.copytree(task.solution("naive"), ws)
    (ws / "start.sh").write_text(BURNING_START)
    r = asyncio.run(grade_workspace(task, ws, 1, tmp_path / "art"))
    # the machine was saturated, by the graded hosts: a score, never "no reward"
    assert r.error is None and not r.overloaded, r.error
    assert r.reward is not None, r
    assert r.health is not None and r.health["sut_cores"] >= 0.5, r.health
    # the pressure it caused is excused in a note; when the machine's stall stayed under
    # the limit anyway (the load window's share of it varies), there was nothing to excuse
    h = r.health
    pressed = (
        (h["cpu_stall"] or 0) > LIMITS.max_cpu_stall
        or (h["ops"] >= LIMITS.min_ops and h["late_fraction"] > LIMITS.max_late_fraction)
        or (h["fault_lag_max_s"] or 0) > LIMITS.max_fault_lag_s
        or (h["pool_lag_max_s"] or 0) > LIMITS.max_pool_lag_s
    )
    noted = any("the system under test used" in n for n in r.notes)
    assert noted == pressed, (h, r.notes)


SLOW_SERVER = """
import http.server, time

class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(1.5)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_GET

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Slow).serve_forever()
"""

SLOW_GRADER = """
import asyncio

from infragym.checkers import Availability
from infragym.grading import GradeOutcome, deploy
from infragym.rubric import Criterion, Rubric
from infragym.workload import KVGenerator, Mix, Runner, Stream


async def grade(ctx):
    cluster = ctx.cluster(1)
    d = await deploy(cluster, ["/usr/bin/python3", "/srv/app/slow.py"], lambda h: {},
                     port=8080, timeout=10)
    assert not d.problems, d.problems
    gen = KVGenerator(d.urls, seed=ctx.seed, mix=Mix(read=1.0), keys=4)

    async def load():
        async with Runner(ctx.history, ctx.clock) as runner:
            await runner.run(Stream(gen, rate=20.0, duration=3.0, timeout=1.0))

    await asyncio.to_thread(cluster.run_client, load)
    result = Availability(slo=0.99).check(ctx.history)
    reward = Rubric([Criterion("availability")]).score({"availability": result})
    return GradeOutcome(reward, reward.reward)
"""


@needs_root
def test_a_slow_system_is_not_excused_as_an_overloaded_machine(tmp_path: Path) -> None:
    load = os.getloadavg()[0]
    d = tiny_task(tmp_path, name="slow", grader=SLOW_GRADER)
    (d / "solutions" / "robust" / "slow.py").write_text(SLOW_SERVER)
    task = load_task(d)
    r = asyncio.run(grade_workspace(task, task.solution("robust"), 1, tmp_path / "art"))
    assert r.error is None, f"{r.error} (load average before: {load:.1f})"
    assert not r.overloaded
    assert r.reward is not None and r.reward < 0.5, r
    # the health check judged the load window, and found the client on time
    assert r.health is not None and r.health["ops"] >= 50, r.health
    assert r.health["late_fraction"] < 0.1, r.health


# reads the workspace and takes 6 s: long enough to be judged by its CPU stall alone
WAITING_GRADER = """
import asyncio

from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    await asyncio.sleep(6)
    res = CheckResult("answer", Verdict.PASS, 1.0, "answer")
    return GradeOutcome(Rubric([Criterion("answer")]).score({"answer": res}), 1.0)
"""


@needs_root
def test_the_env_grades_again_then_fails_the_episode_when_still_overloaded(
    tmp_path: Path, cpu_hogs: list[subprocess.Popen[bytes]]
) -> None:
    import infragym
    from infragym.env import EpisodeError, ToolCall

    d = tiny_task(tmp_path, name="waits", dev_hosts=0, grader=WAITING_GRADER)
    progress: list[str] = []

    async def episode() -> None:
        async with infragym.make(
            str(d),
            artifacts_dir=tmp_path / "a",
            grade_retries=1,
            grade_retry_wait_s=0,
            progress=progress.append,
        ) as env:
            await env.reset(seed=3)
            await env.step(ToolCall("submit"))

    with pytest.raises(EpisodeError, match="grading overloaded") as info:
        asyncio.run(episode())
    assert "graded 2 times" in str(info.value)
    grade = info.value.grade
    assert grade is not None and grade.overloaded and grade.reward is None
    assert grade.withheld_reward == 1.0
    assert any("waiting for a calmer machine" in m for m in progress), progress
    (ep,) = (tmp_path / "a").iterdir()
    assert {p.name for p in ep.iterdir()} >= {"grading", "grading-retry1"}


def _history(late_every: int, fault_lag: float) -> History:
    """100 operations 10 ms apart, every ``late_every``-th started 0.3 s late, and one
    crash applied ``fault_lag`` seconds after its schedule."""
    h = History()
    for i in range(100):
        at = i * 0.01
        start = at + (0.3 if late_every and i % late_every == 0 else 0.001)
        h.append(OpEvent(OpType.INVOKE, i, "read", start, "k", None, at, "n1"))
        h.append(OpEvent(OpType.OK, i, "read", start + 0.005, "k", None, None, "n1"))
    h.record_fault(
        FaultEvent(
            0.2 + fault_lag, "crash", FaultAction.APPLY, "crash-1", ("n1",), {"scheduled": 0.2}
        )
    )
    return h


def test_the_verdict_names_what_was_late() -> None:
    from infragym.grading._health import judge

    calm = judge(_history(0, 0.05), 0.0, None)
    assert calm is not None and not calm.overloaded and calm.reason is None
    assert calm.ops == 100 and calm.late == 0
    late = judge(_history(5, 0.05), 0.0, None)  # 20 % late
    assert late is not None and late.overloaded and late.reason is not None
    assert "20% of operations started over 100 ms late" in late.reason
    behind = judge(_history(0, 3.0), 0.0, None)
    assert behind is not None and behind.overloaded and behind.reason is not None
    assert "3.0 s behind its schedule" in behind.reason
    assert judge(History(), 0.0, None) is None  # nothing to judge


# holds a thread of the default executor for 4 s, as a grader's load does, and meanwhile
# times a short call through the same executor, as its nemesis applies a fault
HOLDING_GRADER = """
import asyncio
import time

from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    load = asyncio.ensure_future(asyncio.to_thread(time.sleep, 4))
    await asyncio.sleep(1)
    t0 = time.monotonic()
    await asyncio.to_thread(time.sleep, 0)
    waited = time.monotonic() - t0
    await load
    res = CheckResult("answer", Verdict.PASS, 1.0, "answer")
    return GradeOutcome(Rubric([Criterion("answer")]).score({"answer": res}), 1.0, [str(waited)])
"""


def test_concurrent_gradings_in_one_process_do_not_starve_each_others_threads(
    tmp_path: Path,
) -> None:
    # more gradings than Python's default executor has threads (min(32, cpus + 4))
    n = min(32, (os.cpu_count() or 1) + 4) + 2
    task = load_task(tiny_task(tmp_path, name="holds", dev_hosts=0, grader=HOLDING_GRADER))
    # all at once: admission control would otherwise run them a machine's worth at a time
    room = Admission(tmp_path / "ledger", Capacity(float(n), "test"))

    async def all_at_once() -> list[GradeResult]:
        return await asyncio.gather(
            *(
                grade_workspace(
                    task, task.solution("robust"), seed, tmp_path / f"a{seed}", admission=room
                )
                for seed in range(n)
            )
        )

    results = asyncio.run(all_at_once())
    waits = [float(r.notes[0]) for r in results]
    # with too few threads, each waits behind the others' 4 s loads
    assert max(waits) < 2.0, f"a grading waited {max(waits):.1f} s for a thread: {waits}"
    assert all(r.error is None and r.reward == 1.0 for r in results), results


def test_pressure_the_graded_hosts_made_themselves_is_no_excuse() -> None:
    from infragym.grading._health import Monitor, judge

    cores = os.cpu_count() or 1
    verdicts = {}
    for hosts_cpu_s in (0.1 * cores, 5.0 * cores):  # over the 10 s window
        m = Monitor()
        m.samples = [(0.0, 0), (10.0, int(9.9e6))]  # some task waited 99% of the time
        m.cpu = [(0.0, 0.0), (10.0, hosts_cpu_s)]
        verdicts[hosts_cpu_s] = judge(_history(0, 0.05), 0.0, m, run=(0.0, 10.0))
    elsewhere, itself = verdicts.values()
    # the pressure came from elsewhere: withheld
    assert elsewhere is not None and elsewhere.overloaded and elsewhere.reason is not None
    assert "CPU stall 99%" in elsewhere.reason
    # the graded hosts used half the machine: the grade stands, and the note says why
    assert itself is not None and not itself.overloaded and itself.reason is None
    assert itself.sut_cores == pytest.approx(0.5 * cores)
    assert itself.note is not None and "the system under test used" in itself.note


def test_pressure_from_elsewhere_is_not_excused_by_a_busy_system_under_test() -> None:
    """The graded hosts explain the pressure only when they used at least the task's
    declared cost of a whole grading and at least the work outside every host. Half a
    core's worth (a correct 5-host service on 2 cores, under kv-replicated's 0.6) beside
    other gradings is not excused; a CPU-burning service is, even beside another one (the
    other's hosts are not "outside"), but not beside outside work that used more."""
    from infragym.grading._health import Monitor, judge

    cores = os.cpu_count() or 1

    def verdict(sut: float, hosts: float, busy: float, cost: float = 0.6) -> Health:
        """Cores over a 10 s window: this grading's hosts, all hosts, the machine's busy."""
        m = Monitor()
        m.samples = [(0.0, 0), (10.0, int(9.9e6))]  # some task waited 99% of the time
        m.cpu = [(0.0, 0.0), (10.0, sut * 10.0)]
        m.hosts = [(0.0, 0.0), (10.0, hosts * 10.0)]
        m.busy = [(0.0, 0.0), (10.0, busy * 10.0)]
        h = judge(_history(0, 0.05), 0.0, m, run=(0.0, 10.0), cost=cost)
        assert h is not None
        return h

    full = float(cores)
    correct = verdict(sut=0.45, hosts=0.45 * 3, busy=full)  # beside two more gradings
    assert correct.overloaded and correct.note is None, correct
    # at or above the task's cost but not the work outside hosts: withheld
    hogged = verdict(sut=0.3 * full, hosts=0.3 * full, busy=full)
    assert hogged.overloaded and hogged.outside_cores == pytest.approx(0.7 * full)
    # a burner beside another burner: outside work 0.1 core, so the grade stands
    burner = verdict(sut=0.45 * full, hosts=0.9 * full, busy=0.9 * full + 0.1)
    assert not burner.overloaded and burner.note is not None, burner
    assert "the system under test used" in burner.note
    assert burner.outside_cores == pytest.approx(0.1)
    # under the task's declared cost, however the rest looks: withheld
    assert verdict(sut=0.45 * full, hosts=0.45 * full, busy=0.5 * full, cost=full).overloaded


def test_a_service_starved_by_other_work_is_withheld_though_the_harness_kept_time() -> None:
    """16 gradings admitted at once on 2 cores: the harness kept its schedule and the
    machine's stall stayed under its limit, but the graded hosts waited for a CPU most of
    the time and correct services scored 0. Their own wait decides; a service that burnt
    the CPU itself (and so waited for it) is scored as measured."""
    from infragym.grading._health import Monitor, judge

    ticks = iter([{"run-a": 0.0}, {"run-a": 6.0}])  # seconds its hosts waited, cumulative
    m = Monitor(stalls=lambda: next(ticks))
    m.sample()
    m.sample()
    assert [v for _, v in m.sut_stalls] == [0.0, 6.0]
    cores = os.cpu_count() or 1

    def verdict(waited_s: float, sut: float, busy: float) -> Health:
        """Over a 10 s window: the hosts' wait for a CPU, their cores, the machine's."""
        m = Monitor()
        m.sut_stalls = [(0.0, 0.0), (10.0, waited_s)]
        m.samples = [(0.0, 0), (10.0, int(5e6))]  # the machine: 50 %, under its limit
        m.cpu = [(0.0, 0.0), (10.0, sut * 10.0)]
        m.hosts = [(0.0, 0.0), (10.0, sut * 10.0)]
        m.busy = [(0.0, 0.0), (10.0, busy * 10.0)]
        h = judge(_history(0, 0.05), 0.0, m, run=(0.0, 10.0), cost=0.6, max_sut_stall=0.45)
        assert h is not None
        return h

    starved = verdict(waited_s=6.0, sut=0.07, busy=float(cores))
    assert starved.sut_cpu_stall == pytest.approx(0.6)
    assert starved.overloaded and starved.reason is not None
    assert "the graded hosts waited for a CPU 60% of the load window" in starved.reason
    assert "while other work kept 1.93 cores busy" in starved.reason or cores != 2
    calm = verdict(waited_s=2.0, sut=0.15, busy=0.4)  # 5 hosts on 2 cores wait a little
    assert not calm.overloaded, calm.reason
    # its own low-priority spinners soaked up the idle 20 %: it waited, but others did not
    # hold the cores (1.6 of 2), so no withheld grade for a service that made itself wait
    spinner = verdict(waited_s=6.0, sut=0.2 * cores, busy=float(cores))
    assert not spinner.overloaded, spinner.reason
    assert not calm.overloaded, calm.reason
    burner = verdict(waited_s=9.0, sut=0.9 * cores, busy=0.95 * cores)
    assert not burner.overloaded, burner  # it held the cores itself
    # a task that has not measured its services' wait records it, does not judge it
    m = Monitor()
    m.sut_stalls = [(0.0, 0.0), (10.0, 6.0)]
    m.samples = [(0.0, 0), (10.0, int(5e6))]
    unjudged = judge(_history(0, 0.05), 0.0, m, run=(0.0, 10.0), cost=0.6)
    assert unjudged is not None and not unjudged.overloaded
    assert unjudged.sut_cpu_stall == pytest.approx(0.6)
    assert find_task("kv-replicated").spec.grading_max_sut_stall == 0.45
    assert Monitor(stalls=lambda: {}).sut_stall(0.0, 10.0) is None  # no cgroup v2: unknown


def test_a_short_freeze_of_the_harness_withholds_the_grade() -> None:
    """A harness frozen for ~2 s spoils one fault window, though 95 % of all operations
    started on time: the late starts within a stretch decide, not only the whole window's."""
    from infragym.grading._health import judge

    def history(frozen: tuple[float, float]) -> History:
        h = History()
        for i in range(400):  # 20 s at 20 operations per second
            at = i * 0.05
            start = frozen[1] + 0.01 if frozen[0] <= at < frozen[1] else at + 0.001
            h.append(OpEvent(OpType.INVOKE, i, "read", start, "k", None, at, "n1"))
            h.append(OpEvent(OpType.OK, i, "read", start + 0.005, "k", None, None, "n1"))
        return h

    frozen = judge(history((8.0, 9.0)), 0.0, None)
    assert frozen is not None and frozen.late_fraction < LIMITS.max_late_fraction
    assert frozen.late_peak is not None and frozen.late_peak > LIMITS.max_late_peak
    assert frozen.overloaded and frozen.reason is not None
    assert f"meant to start within {LIMITS.span_s:g} s started" in frozen.reason
    # a freeze shorter than a late start (a scheduling hiccup) passes
    hiccup = judge(history((8.0, 8.05)), 0.0, None)
    assert hiccup is not None and not hiccup.overloaded, hiccup.reason
    calm = judge(history((0.0, 0.0)), 0.0, None)
    assert calm is not None and calm.late_peak == 0.0 and not calm.overloaded
    # once the last fault is healed, a stall (during the final reads, say) spoils nothing
    after = history((15.0, 16.0))
    for t, action in ((5.0, FaultAction.APPLY), (10.0, FaultAction.HEAL)):
        after.record_fault(FaultEvent(t, "crash", action, "crash-1", ("n1",), {"scheduled": t}))
    healed = judge(after, 0.0, None)
    assert healed is not None and not healed.overloaded, healed.reason
    assert healed.late_peak == 0.0 and healed.late > 0
    during = history((8.0, 9.0))
    for e in after.faults:
        during.record_fault(e)
    frozen_in_fault = judge(during, 0.0, None)
    assert frozen_in_fault is not None and frozen_in_fault.overloaded


def test_the_monitor_records_what_else_can_freeze_a_harness() -> None:
    """Memory and I/O stall, the hypervisor's steal and collections are recorded with the
    grade (not judged): the next unexplained freeze names its cause."""
    from infragym.grading._health import PROC_STAT, PSI_OTHER, Monitor, judge

    async def watch() -> Monitor:
        async with Monitor(interval=0.05) as m:
            await asyncio.sleep(0.4)
        return m

    m = asyncio.run(watch())
    # the history's 1 s load window starts with the monitor's samples
    health = judge(_history(0, 0.05), m.samples[0][0] if m.samples else time.monotonic(), m)
    assert health is not None
    for name, path in PSI_OTHER.items():
        value = getattr(health, f"{name}_stall")
        assert (value is not None) == path.exists(), (name, value)
        assert value is None or 0.0 <= value <= 1.0
    if PROC_STAT.exists():
        assert health.steal is not None and 0.0 <= health.steal <= 1.0
