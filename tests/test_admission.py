"""Admission control: gradings start only when the machine has room, first come first
served, and nothing a dead or cancelled grading left holds the machine."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym import ConfigError
from infragym.grading import (
    Admission,
    Capacity,
    default_concurrency,
    grade_workspace,
    machine_cores,
)
from infragym.grading._admission import _Entry
from infragym.sandbox.lowlevel import pid_start_time
from infragym.tasks import load_task
from infragym.tasks._spec import parse_spec

REPO = Path(__file__).resolve().parents[1]


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """A test written as a coroutine, run in a fresh event loop."""

    @functools.wraps(fn)
    def test(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return test


def ledger(
    tmp_path: Path,
    cores: float,
    pressure: list[float | None] | None = None,
    busy: list[float | None] | None = None,
    ramp_s: float = 10.0,
) -> Admission:
    """A ledger in ``tmp_path``; ``busy`` (a box) is the machine's measured busy cores, or
    with None only the declared costs decide."""
    box = pressure if pressure is not None else [None]
    measured = None if busy is None else (lambda: busy[0])
    return Admission(
        tmp_path, Capacity(cores, "test"), pressure=lambda: box[0], poll_s=0.02,
        busy=measured, ramp_s=ramp_s, space_s=ramp_s,
    )  # fmt: skip


async def _holder(
    adm: Admission, cost: float, label: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """A grading that holds its slot until released: (admitted, release)."""
    admitted, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with adm.slot(cost, label):
            admitted.set()
            await release.wait()

    task = asyncio.create_task(hold())
    release.task = task  # type: ignore[attr-defined]  # kept alive with the event
    return admitted, release


@run_async
async def test_gradings_cheaper_than_declared_are_admitted_by_what_the_machine_measures(tmp_path):
    """Declared 0.6 cores each on 2 cores: 3 fit. When the machine measures less busy than
    that, more start: the measured busy cores, plus the gradings admitted too recently to
    show in it and the newcomer, each charged what an older grading measures (half again;
    at least a third, at most all of its declared cost), fit in 90 % of the cores, one such
    admission per spacing (here the ramp's 1 s). Busy with other work, the machine admits
    none beyond the declared."""
    busy: list[float | None] = [0.3]
    adm = ledger(tmp_path, 2.0, busy=busy, ramp_s=1.0)
    holders = []

    async def admit(label: str, within: float = 3.0) -> None:
        holders.append(await _holder(adm, 0.6, label))
        await asyncio.wait_for(holders[-1][0].wait(), within)

    for i in range(3):  # declared: 1.8 of 2 cores
        await admit(f"g{i}")
    holders.append(await _holder(adm, 0.6, "g3"))
    await asyncio.sleep(0.1)
    # none is measured yet: the three count at 0.6 each on top of the 0.3 measured
    assert not holders[3][0].is_set()
    assert [e["label"] for e in adm.status()["waiting"]] == ["g3"]
    # past their ramp: 0.3 + max(1.5 x 0.3 / 3, 0.6 / 3) <= 1.8
    await asyncio.wait_for(holders[3][0].wait(), 3)
    assert len(adm.status()["running"]) == 4
    busy[0] = 0.0  # an idle machine still admits one grading per ramp, each seen first
    holders.append(await _holder(adm, 0.6, "g4"))
    await asyncio.sleep(0.3)
    assert not holders[4][0].is_set(), "g3 was admitted by measurement under 1 s ago"
    await asyncio.wait_for(holders[4][0].wait(), 3)
    await asyncio.sleep(1.1)  # all five past their ramp
    busy[0] = 1.5  # the machine got busy (its gradings and some other work)
    holders.append(await _holder(adm, 0.6, "g5"))
    await asyncio.sleep(0.3)
    assert not holders[5][0].is_set(), "1.5 measured + 1.5 x 1.5 / 5 > 90 % of 2 cores"
    busy[0] = None  # unknown: only the declared costs decide, and 6 x 0.6 do not fit
    await asyncio.sleep(0.3)
    assert not holders[5][0].is_set()
    busy[0] = 1.3  # 1.3 + 1.5 x 1.3 / 5 = 1.69: fits 90 % of 2 cores (not 80 %)
    await asyncio.wait_for(holders[5][0].wait(), 3)
    for _, release in holders:
        release.set()
    await asyncio.sleep(0.1)
    assert adm.status() == {"running": [], "waiting": []}


def test_the_ledger_keeps_what_older_versions_read_and_ignores_what_it_does_not_know(tmp_path):
    """Admission times sit beside the entries, not in them (an older version built its
    entries from every key and started the ledger over on an unknown one)."""
    adm = ledger(tmp_path, 2.0)
    me = _Entry("t1", os.getpid(), pid_start_time(os.getpid()), 0.5, "g", time.time())
    assert adm._try(me)[0]
    raw = json.loads((tmp_path / "admission.json").read_text())
    assert set(raw["running"][0]) == {"token", "pid", "start", "cost", "label", "since", "polled"}
    assert raw["admitted"]["t1"] == pytest.approx(me.admitted)
    raw["running"][0]["from_a_newer_version"] = 1
    (tmp_path / "admission.json").write_text(json.dumps(raw))
    assert [e["label"] for e in adm.status()["running"]] == ["g"]


@run_async
async def test_gradings_beyond_the_capacity_wait_and_start_in_the_order_they_asked(tmp_path):
    adm = ledger(tmp_path, 1.0)
    running: set[int] = set()
    most = 0
    starts: list[int] = []
    release = {i: asyncio.Event() for i in range(4)}

    async def grading(i: int) -> None:
        nonlocal most
        async with adm.slot(0.5, f"g{i}"):
            starts.append(i)
            running.add(i)
            most = max(most, len(running))
            await release[i].wait()
            running.discard(i)

    tasks = []
    for i in range(4):
        tasks.append(asyncio.create_task(grading(i)))
        await asyncio.sleep(0.05)  # ask in order 0, 1, 2, 3
    await asyncio.sleep(0.2)
    assert starts == [0, 1], "two gradings of 0.5 cores fit in 1 core, the others wait"
    waiting = [e["label"] for e in adm.status()["waiting"]]
    assert waiting == ["g2", "g3"]
    release[1].set()
    await asyncio.sleep(0.2)
    assert starts == [0, 1, 2], "the first in line takes the freed room, not the last"
    for i in (0, 2, 3):
        release[i].set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert starts == [0, 1, 2, 3] and most == 2
    assert adm.status() == {"running": [], "waiting": []}


@run_async
async def test_a_grading_bigger_than_the_machine_runs_alone_rather_than_never(tmp_path):
    adm = ledger(tmp_path, 1.0)
    async with adm.slot(3.0, "big") as waited:
        assert waited < 1.0
        second = asyncio.create_task(_enter(adm, 0.5, "small"))
        await asyncio.sleep(0.2)
        assert not second.done(), "nothing else fits beside a grading that fills the machine"
    await asyncio.wait_for(second, 5)


async def _enter(adm: Admission, cost: float, label: str) -> float:
    async with adm.slot(cost, label) as waited:
        return waited


@run_async
async def test_cpu_pressure_holds_a_second_grading_back_but_never_the_first(tmp_path):
    pressure: list[float | None] = [0.95]
    adm = ledger(tmp_path, 4.0, pressure)
    async with adm.slot(0.5, "first"):  # alone: starts whatever the pressure
        second = asyncio.create_task(_enter(adm, 0.5, "second"))
        await asyncio.sleep(0.2)
        assert not second.done(), "room in cores, but the machine is near its health limit"
        pressure[0] = 0.2
        await asyncio.wait_for(second, 5)


@run_async
async def test_a_cancelled_waiter_leaves_the_line(tmp_path):
    adm = ledger(tmp_path, 0.5)
    async with adm.slot(0.5, "holder"):
        stuck = asyncio.create_task(_enter(adm, 0.5, "cancelled"))
        await asyncio.sleep(0.1)
        later = asyncio.create_task(_enter(adm, 0.5, "later"))
        await asyncio.sleep(0.1)
        stuck.cancel()
        await asyncio.sleep(0.1)
        assert [e["label"] for e in adm.status()["waiting"]] == ["later"]
    await asyncio.wait_for(later, 5)


HOLDER = """
import asyncio, sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from infragym.grading import Admission, Capacity

async def main():
    adm = Admission(Path(sys.argv[1]), Capacity(1.0, "test"), pressure=lambda: None)
    async with adm.slot(1.0, "killed"):
        print("held", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


@run_async
async def test_a_killed_process_does_not_hold_the_machine(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(tmp_path)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert await asyncio.to_thread(child.stdout.readline) == b"held\n"
        adm = ledger(tmp_path, 1.0)
        mine = asyncio.create_task(_enter(adm, 0.5, "mine"))
        await asyncio.sleep(0.3)
        assert not mine.done(), "another process holds the whole machine"
        assert [e["label"] for e in adm.status()["running"]] == ["killed"]
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(mine, 10)  # the dead holder's entry is dropped
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_machine_cores_reads_the_override_and_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("INFRAGYM_GRADING_CORES", "1.5")
    assert machine_cores() == Capacity(1.5, "INFRAGYM_GRADING_CORES")
    for bad in ("0", "-1", "two", "nan", "inf"):
        monkeypatch.setenv("INFRAGYM_GRADING_CORES", bad)
        with pytest.raises(ConfigError, match="INFRAGYM_GRADING_CORES"):
            machine_cores()
    monkeypatch.delenv("INFRAGYM_GRADING_CORES")
    cap = machine_cores()
    assert 0 < cap.cores <= len(os.sched_getaffinity(0))


def test_default_concurrency_fits_the_declared_cost():
    assert default_concurrency(0.5, Capacity(2.0, "test")) == 4
    assert default_concurrency(0.6, Capacity(2.0, "test")) == 3
    assert default_concurrency(3.0, Capacity(2.0, "test")) == 1


def test_task_toml_declares_the_cost_of_a_grading(tmp_path):
    d = tiny_task(tmp_path)
    toml = d / "task.toml"
    assert load_task(d).spec.grading_cores == 0.5  # the default
    toml.write_text(toml.read_text().replace("budget_s = 60", "budget_s = 60\ncores = 1.25"))
    assert load_task(d).spec.grading_cores == 1.25
    for bad in ("0", "-1", '"x"', "nan"):
        problems: list[str] = []
        toml.write_text(
            toml.read_text()
            .replace("cores = 1.25", f"cores = {bad}")
            .replace(f"cores = {bad}\ncores", "cores")
        )
        parse_spec(toml, problems)
        assert any("grading.cores" in p for p in problems), (bad, problems)
        toml.write_text(toml.read_text().replace(f"cores = {bad}", "cores = 1.25"))
    # the graded hosts' wait for a CPU: judged only where the task measured it
    assert load_task(d).spec.grading_max_sut_stall is None
    base = toml.read_text()
    toml.write_text(base.replace("cores = 1.25", "cores = 1.25\nmax_sut_stall = 0.4"))
    assert load_task(d).spec.grading_max_sut_stall == 0.4
    for bad in ("0", "1.5", '"x"'):
        problems = []
        toml.write_text(base.replace("cores = 1.25", f"cores = 1.25\nmax_sut_stall = {bad}"))
        parse_spec(toml, problems)
        assert any("grading.max_sut_stall" in p for p in problems), (bad, problems)


@run_async
async def test_a_grading_waits_for_room_before_it_runs_and_says_so(tmp_path):
    task = load_task(tiny_task(tmp_path / "t", grader=WORKSPACE_GRADER))
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "answer.txt").write_text("42\n")
    adm = ledger(tmp_path / "ledger", 0.5)
    said: list[str] = []
    async with adm.slot(0.5, "other"):
        grading = asyncio.create_task(
            grade_workspace(task, ws, 1, tmp_path / "a", progress=said.append, admission=adm)
        )
        await asyncio.sleep(0.3)
        assert not grading.done(), "the machine is full: the grading must wait"
    result = await asyncio.wait_for(grading, 30)
    assert result.reward == 1.0
    assert result.timings["admission_wait_s"] >= 0.3
    assert any("waiting for room to grade" in m and "0.5 of 0.5 cores" in m for m in said)


@run_async
async def test_a_waiting_grading_that_stopped_asking_does_not_hold_up_the_line(tmp_path):
    """A waiter whose process was stopped (Ctrl-Z, a debugger) or whose event loop is
    blocked stays alive but never asks again: at the head of the line it kept every later
    grading on the machine waiting for ever, even with nothing running."""
    adm = Admission(tmp_path, Capacity(0.5, "test"), pressure=lambda: None, poll_s=0.02,
                    stale_s=0.5)  # fmt: skip
    stuck = asyncio.Event()

    async def first() -> None:
        async with adm.slot(0.5, "running"):
            await stuck.wait()

    runner = asyncio.create_task(first())
    await asyncio.sleep(0.1)
    from infragym.grading._admission import _Entry
    from infragym.sandbox.lowlevel import pid_start_time

    pid = os.getpid()
    frozen = _Entry("f" * 16, pid, pid_start_time(pid), 0.5, "frozen", 0.0)
    admitted, _ = adm._try(frozen)  # it asks once while the room is taken, then never again
    assert not admitted
    assert [e["label"] for e in adm.status()["waiting"]] == ["frozen"]
    stuck.set()
    await runner
    async with asyncio.timeout(10):  # a safety limit: without the fix it waits for ever
        async with adm.slot(0.5, "later"):
            assert [e["label"] for e in adm.status()["running"]] == ["later"]
    assert adm.status() == {"running": [], "waiting": []}
