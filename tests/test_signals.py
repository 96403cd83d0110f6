"""SIGTERM and SIGINT stop `infragym run` at any moment: quickly, cleanly, leaving nothing.

The CLI runs as a subprocess in its own process group; each test waits for a point of
the episode (the sandbox being built, the agent's command running, the grader running,
kv-replicated's load phase with a fault active), then sends the signal to the process
and again, a moment later, to its group, as ``timeout`` does (Ctrl-C three times in one
case). The run must exit within ``EXIT_LIMIT_S`` with 143 (SIGTERM) or 130 (SIGINT), no
traceback, and leave no namespace, link, cgroup, mount, run record or process behind.
The old code printed "RuntimeError: no running event loop" tracebacks here (the repeat
raised into asyncio's teardown) and, with a fault active, could spin at full CPU in the
final heal; the last test reproduces that spin directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, assert_no_leftovers, leftovers
from tinytask import tiny_task

from infragym.sandbox import _cgroup, _cleanup, _state

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root (namespaces, cgroups, mounts)")

# the CLI, with SIGUSR1 dumping every thread's stack and SIGUSR2 every asyncio task's: a
# run that hangs says where
BOOT = """
import asyncio, faulthandler, runpy, signal, sys

def tasks(signum, frame):
    try:
        for t in asyncio.all_tasks(asyncio.get_running_loop()):
            t.print_stack(file=sys.stderr)
    except RuntimeError:
        print("no running loop", file=sys.stderr)

faulthandler.register(signal.SIGUSR1, all_threads=True)
signal.signal(signal.SIGUSR2, tasks)
runpy.run_module("infragym.cli.main", run_name="__main__")
"""
INFRAGYM = [sys.executable, "-c", BOOT]
EXIT_LIMIT_S = 15.0
REPEAT_AFTER_S = 0.05
CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}

# a deployed grader that says where it is (a file named by the environment), then waits:
# a signal sent once the file exists lands while grading runs on its own cluster
SLOW_GRADER = """
import asyncio, os
from pathlib import Path
from typing import Any


async def grade(ctx):
    host = ctx.cluster(1).hosts[0]
    host.run(["true"], timeout=10)
    Path(os.environ["IG_TEST_MARK"] + f"-{ctx.seed}").touch()
    await asyncio.sleep(60)
    raise AssertionError("the signal should have stopped grading")
"""


class Run:
    """One `infragym run` in its own process group, watched for the run ids it claims."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out = tmp / "out"
        self.stderr_path = tmp / "stderr.txt"
        self.mark = str(tmp / "mark")
        self.run_ids: set[str] = set()
        with open(tmp / "stdout.txt", "wb") as so, open(self.stderr_path, "wb") as se:
            self.proc = subprocess.Popen(
                [*INFRAGYM, "run", *args, "--out", str(self.out)],
                stdout=so, stderr=se, start_new_session=True,
                env={**os.environ, "IG_TEST_MARK": self.mark, **(env or {})},
            )

    def _watch(self) -> None:
        self.run_ids |= {r.run_id for r in _state.all_records() if r.owner_pid == self.proc.pid}

    def wait_for(self, what: str, cond: Callable[[], bool], limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while not cond():
            self._watch()
            if self.proc.poll() is not None:
                pytest.fail(f"the run ended (exit {self.proc.returncode}) before {what}: "
                            f"{self.stderr_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {limit:g} s")
            time.sleep(0.05)
        self._watch()

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._watch()
            time.sleep(0.05)

    def signal(self, sig: signal.Signals, times: int) -> None:
        """Once to the process, then ``times - 1`` more to its group (as `timeout` does, or
        a user pressing Ctrl-C again), each a moment later (two at once would merge into
        one pending signal): the repeats land in the teardown the first one started."""
        self._watch()
        os.kill(self.proc.pid, sig)
        for _ in range(times - 1):
            time.sleep(REPEAT_AFTER_S)
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.killpg(self.proc.pid, sig)

    def assert_stopped_cleanly(self, sig: signal.Signals, agent_marker: str | None = None) -> None:
        try:
            rc = self.proc.wait(EXIT_LIMIT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGUSR2)
            time.sleep(1)
            os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(1)
            self._kill_and_sweep()
            pytest.fail(f"`infragym run` did not exit within {EXIT_LIMIT_S:g} s of {sig.name}; "
                        f"its stacks: {self.stderr_path.read_text()[-12000:]}")
        stderr = self.stderr_path.read_text()
        assert "Traceback" not in stderr, stderr[-3000:]
        # 128 + signal, or killed by the repeat once everything was removed (a shell
        # shows both as 128 + signal)
        assert rc in (CODES[sig], -sig), f"exit code {rc}, not {CODES[sig]}: {stderr[-2000:]}"
        left = [r.run_id for r in _state.all_records() if r.owner_pid == self.proc.pid]
        assert not left, f"run records left behind: {left}"
        assert self.run_ids, "the run was never seen to claim a run id"
        for run_id in self.run_ids:
            assert_no_leftovers(run_id)
        assert not _session_processes(self.proc.pid), "processes of the run are still alive"
        if agent_marker is not None:
            assert not _processes_with(agent_marker), "the agent's command is still running"

    def _kill_and_sweep(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._watch()
        report = _cleanup.CleanupReport()
        for run_id in self.run_ids:
            if any(leftovers(run_id).values()):
                _cleanup._sweep_run(run_id, report)
            rec = _state.RunRecord.load(run_id)
            if rec is not None:
                rec.remove()


def _session_processes(sid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "sid=,pid=,args="], capture_output=True, text=True,
                         check=True).stdout
    return [ln for ln in out.splitlines() if ln.split(None, 1)[0] == str(sid)]


def _processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True,
                         check=True).stdout
    return [ln for ln in out.splitlines() if marker in ln]


@pytest.fixture
def slow_task(tmp_path: Path) -> Path:
    return tiny_task(tmp_path / "tasks", grader=SLOW_GRADER, command_timeout=60)


@pytest.mark.timeout(60)
def test_sigterm_twice_while_the_sandbox_is_built(tmp_path: Path, slow_task: Path) -> None:
    run = Run(tmp_path, str(slow_task), "--agent", "reference:robust")
    run.wait_for("run record", lambda: bool(run.run_ids), limit=30)
    run.signal(signal.SIGTERM, times=2)
    run.assert_stopped_cleanly(signal.SIGTERM)


@pytest.mark.timeout(60)
def test_sigterm_twice_while_grading(tmp_path: Path, slow_task: Path) -> None:
    run = Run(tmp_path, str(slow_task), "--agent", "reference:robust")
    run.wait_for("grader", lambda: os.path.exists(run.mark + "-1"))
    run.signal(signal.SIGTERM, times=2)
    run.assert_stopped_cleanly(signal.SIGTERM)


@pytest.fixture
def model_server() -> Iterator[str]:
    """A scripted model whose agent runs a long command on its workstation (sleep MARKER)."""
    from infragym.testing import Reply, ScriptedModelServer, by_turn

    marker = f"sleep {random.randrange(40_000, 50_000)}"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = ScriptedModelServer(
        [], then=by_turn([Reply.tool("bash", {"command": marker})]),
        models=("test-model",), api_key="test-key",
    )
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        yield f"{server.url}\n{marker}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.timeout(60)
def test_sigterm_twice_while_the_agent_runs_a_command(tmp_path: Path, slow_task: Path,
                                                      model_server: str) -> None:
    url, marker = model_server.split("\n")
    run = Run(tmp_path, str(slow_task), "--agent", "openai:test-model", "--base-url", url,
              env={"OPENAI_API_KEY": "test-key"})
    run.wait_for("agent command", lambda: bool(_processes_with(marker)))
    run.signal(signal.SIGTERM, times=2)
    run.assert_stopped_cleanly(signal.SIGTERM, agent_marker=marker)


@pytest.mark.timeout(90)
def test_ctrl_c_thrice_in_the_second_episode_of_a_multi_seed_run(tmp_path: Path,
                                                                   slow_task: Path) -> None:
    """An impatient user: Ctrl-C three times. Seed 1 is graded quickly, seed 2's grader is
    the one interrupted."""
    grader = slow_task / "grader.py"
    grader.write_text(grader.read_text().replace(
        "await asyncio.sleep(60)", "await asyncio.sleep(60 if ctx.seed == 2 else 0)").replace(
        "raise AssertionError", "if ctx.seed == 2: raise AssertionError"))
    run = Run(tmp_path, str(slow_task), "--agent", "reference:robust", "--seeds", "1-2")
    run.wait_for("seed 2's grader", lambda: os.path.exists(run.mark + "-2"))
    run.signal(signal.SIGINT, times=3)
    run.assert_stopped_cleanly(signal.SIGINT)


@pytest.mark.timeout(120)
def test_sigterm_twice_in_kv_replicated_load_phase_with_a_fault_active(tmp_path: Path) -> None:
    """Where the hang was: the final heal of an active fault after asyncio's teardown."""
    run = Run(tmp_path, "kv-replicated", "--agent", "reference:naive")

    faults: list[dict[str, Any]] = []

    def schedule_written() -> bool:
        for path in run.out.glob("seed1/*/grading/schedule.json"):
            with contextlib.suppress(ValueError):  # half written
                faults[:] = json.loads(path.read_text())
        return bool(faults)

    run.wait_for("the fault schedule", schedule_written, limit=90)
    assert faults[0]["kind"] == "pause", faults[0]  # seed 1's first fault: a frozen host

    def a_host_frozen() -> bool:
        for run_id in run.run_ids:
            for d in _cgroup.run_cgroups(run_id):
                for host in faults[0]["targets"]:
                    with contextlib.suppress(OSError):
                        if (d / host / "freezer.state").read_text().strip() == "FROZEN":
                            return True
        return False

    run.wait_for("the pause fault", a_host_frozen, limit=30)
    run.sleep(0.5)  # the load and the fault under way
    run.signal(signal.SIGTERM, times=2)
    run.assert_stopped_cleanly(signal.SIGTERM)


# A coroutine its closed loop left pending is closed by the garbage collector, with no loop
# to run on: the final heal must end, not retry its wait forever at full CPU.
CLOSED_FINAL_HEAL = """
import asyncio

from infragym.history import Clock, History
from infragym.nemesis import Fault, Nemesis
from infragym.sandbox import Cluster


class SlowHeal(Fault):
    kind = "slow-heal"

    def targets(self):
        return ()

    def apply(self, cluster):
        return {}

    def heal(self, cluster):
        pass

    async def heal_async(self, cluster):
        await asyncio.sleep(3600)


async def main(nemesis):
    await nemesis.apply(SlowHeal())
    await nemesis.final_heal()


loop = asyncio.new_event_loop()
coro = main(Nemesis(Cluster(1), History(), Clock(), check_capabilities=False))
loop.create_task(coro)
loop.run_until_complete(asyncio.sleep(0.2))  # the final heal now waits for the slow heal
loop.close()
coro.close()
print("closed")
"""


@pytest.mark.timeout(60)
def test_a_final_heal_closed_without_its_loop_ends() -> None:
    try:
        r = subprocess.run([sys.executable, "-c", CLOSED_FINAL_HEAL], capture_output=True,
                           text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("closing a final heal whose loop is gone spun for 20 s")
    assert r.returncode == 0 and "closed" in r.stdout, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
