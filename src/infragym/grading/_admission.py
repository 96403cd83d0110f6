"""Admission control: gradings start only when the machine has room for them.

A grading measures a live system with load on the machine that runs it. Too many at once
and the harness falls behind (``_health`` then withholds their rewards): asking for 16
episodes at once on 2 cores must give correct rewards more slowly, not withheld ones
faster. So every grading takes a share of the machine before it builds its cluster and
gives it back when its cluster is gone:

- each task declares what one grading costs, in cores (``[grading] cores``, measured);
- the machine offers :func:`machine_cores` (its CPUs, within its cgroup's quota, or
  ``INFRAGYM_GRADING_CORES`` on a machine shared with other work);
- a grading starts when the running ones plus itself fit in that and the machine's CPU
  pressure (10 s average) is below ``hold_pressure``, or at once when no grading runs (one
  grading always may: the health check judges what it measured);
- or, when their declared costs do not fit, by measurement: the cores the whole machine
  kept busy over the last seconds (``/proc/stat``), plus every grading admitted too
  recently to show in that (``ramp_s``) and itself, each charged what a grading measures
  here (the busy cores per older grading, half again; at least a third and at most all
  of its declared cost), fit in ``max_busy`` of the machine; at most one grading starts
  this way every ``space_s``, so each starts to show in the measurement before the next.
  A task's declared cost covers the costliest correct services it expects; a cheaper one
  leaves room that the measurement hands on, and a machine busy with anything else
  (agents, other work) admits fewer. The health check
  still withholds what was measured on an overloaded machine;
- waiting gradings start in the order they asked (first come, first served); one that
  stopped asking (its process stopped, its event loop blocked) loses its place after
  ``stale_s``, so it cannot hold up those behind it, and queues again when it asks again.

The ledger is machine-wide, so separate processes (``infragym run``, ``infragym serve``
sessions, Ray workers on one node, a trainer) share it: a JSON file under the platform's
state directory, changed under an exclusive ``flock``. Each entry names its process by
pid and start time; an entry whose process is gone (killed, crashed) is dropped by the
next reader, so a dead run never holds the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..sandbox.lowlevel import STATE_DIR, pid_running, pid_start_time
from ._health import read_cpu_s, read_psi_avg10

CORES_ENV = "INFRAGYM_GRADING_CORES"
LEDGER = "admission.json"
HOLD_PRESSURE = 0.75  # 10 s CPU pressure beyond which no further grading starts
POLL_S = 0.25
STALE_S = 10.0  # a waiting grading that has not asked for this long loses its place
REPORT_EVERY_S = 30.0
# by measurement: the share of the cores the machine may keep busy. 48 kv-replicated
# episodes at 16 at once (robust-async, one session, hosts weighted up while their load
# runs): 0.8 gave 992/hour at mean reward 0.989, 0.9 gave 1167/hour at 0.989 (without the
# load's weight 0.9 gave 1217/hour at 0.985, six under 0.97)
MAX_BUSY = 0.9
RAMP_S = 3.0  # a grading admitted this recently is not yet in the busy cores measured
BURST = 1.5  # a grading not yet measured is charged this much more than the average
RECENT_S = 3.0  # the machine's busy cores are averaged over this many seconds
SPACE_S = 1.0  # at most one grading starts by measurement this often
MIN_SPAN_S = 2.0  # and measured over at least this long (else: unknown)


class MachineBusy:
    """The cores this machine kept busy recently, from ``/proc/stat`` sampled at each call
    (a waiting grading asks every ``POLL_S``): the average over the last ``RECENT_S``
    seconds, None until ``MIN_SPAN_S`` of samples exist or where ``/proc/stat`` is
    unreadable. One per process: every grading's admission shares its samples."""

    def __init__(self, read: Callable[[], float | None] | None = None) -> None:
        self._read = read or _busy_cpu_s
        self._samples: list[tuple[float, float]] = []

    def __call__(self) -> float | None:
        now, busy = time.monotonic(), self._read()
        if busy is None:
            return None
        self._samples = [x for x in self._samples if now - x[0] <= RECENT_S]
        self._samples.append((now, busy))
        (t0, b0) = self._samples[0]
        if now - t0 < MIN_SPAN_S:
            return None
        return max(0.0, (busy - b0) / (now - t0))


def _busy_cpu_s() -> float | None:
    cpu = read_cpu_s()
    return None if cpu is None else cpu[0]


MACHINE_BUSY = MachineBusy()


@dataclass(frozen=True)
class Capacity:
    """What gradings may use of this machine, in cores, and where that figure came from."""

    cores: float
    source: str


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """This process's cgroup v2 CPU quota in cores (the tightest along its path), if any."""
    try:
        rel = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
    except (OSError, IndexError):
        return None
    best: float | None = None
    d = root / rel.lstrip("/")
    while True:
        try:
            quota, period = (d / "cpu.max").read_text().split()
            if quota != "max":
                cores = int(quota) / int(period)
                best = cores if best is None else min(best, cores)
        except (OSError, ValueError):
            pass
        if d == root or root not in d.parents:
            return best
        d = d.parent


def machine_cores() -> Capacity:
    """The cores gradings may use: ``INFRAGYM_GRADING_CORES`` if set, else this process's
    CPUs (its affinity) within its cgroup's quota."""
    raw = os.environ.get(CORES_ENV)
    if raw is not None:
        try:
            cores = float(raw)
        except ValueError:
            cores = math.nan
        if not math.isfinite(cores) or cores <= 0:
            raise ConfigError(
                f"{CORES_ENV}={raw!r}: give the cores gradings may use as a number > 0 "
                "(e.g. 1.5), or unset it to use the machine's CPUs"
            )
        return Capacity(cores, CORES_ENV)
    cpus = float(len(os.sched_getaffinity(0)))
    quota = _cgroup_quota()
    if quota is not None and quota < cpus:
        return Capacity(quota, "the cgroup's CPU quota")
    return Capacity(cpus, "the machine's CPUs")


def default_concurrency(cost: float, capacity: Capacity | None = None) -> int:
    """Episodes to run at once by default: as many gradings of ``cost`` cores as fit."""
    cap = capacity or machine_cores()
    return max(1, math.floor(cap.cores / cost + 1e-9))


@dataclass
class _Entry:
    token: str
    pid: int
    start: int | None
    cost: float
    label: str
    since: float
    polled: float = 0.0  # when a waiting grading last asked (time.time())
    admitted: float = 0.0  # when it was admitted (time.time()); kept beside the entries

    def public(self) -> dict[str, Any]:
        """What the ledger keeps of it in the entry itself (what every version reads)."""
        return {k: v for k, v in vars(self).items() if k != "admitted"}

    def alive(self) -> bool:
        """Its process runs: same pid and start time, and not a zombie (a killed process
        its parent has not reaped yet holds nothing)."""
        if self.start is None or pid_start_time(self.pid) != self.start:
            return False
        return pid_running(self.pid)


_FIELDS = frozenset(_Entry.__dataclass_fields__)


def _entry(raw: dict[str, Any]) -> _Entry:
    """An entry from the ledger, ignoring keys this version does not know."""
    return _Entry(**{k: v for k, v in raw.items() if k in _FIELDS})


@dataclass
class _Ledger:
    running: list[_Entry]
    waiting: list[_Entry]
    measured_at: float = 0.0  # the last admission by measurement (time.time())


class Admission:
    """The machine's ledger of running and waiting gradings (see the module's docstring).

    ``directory`` holds the ledger (default: the platform's state directory); ``capacity``
    defaults to :func:`machine_cores`; ``pressure`` reads the CPU pressure as a fraction
    (None where the kernel has no PSI, and then only the cores decide); a waiting grading
    that has not asked for ``stale_s`` seconds loses its place in line; ``busy`` reads the
    cores the machine kept busy recently (None: unknown, and only the declared costs
    decide) for admission by measurement up to ``max_busy`` of the cores.
    """

    def __init__(
        self,
        directory: Path | None = None,
        capacity: Capacity | None = None,
        *,
        hold_pressure: float = HOLD_PRESSURE,
        pressure: Callable[[], float | None] = read_psi_avg10,
        poll_s: float = POLL_S,
        stale_s: float = STALE_S,
        busy: Callable[[], float | None] | None = MACHINE_BUSY,
        max_busy: float = MAX_BUSY,
        ramp_s: float = RAMP_S,
        space_s: float = SPACE_S,
    ) -> None:
        self.directory = directory if directory is not None else STATE_DIR / "admission"
        self.capacity = capacity or machine_cores()
        self.hold_pressure = hold_pressure
        self.pressure = pressure
        self.poll_s = poll_s
        self.stale_s = stale_s
        self.busy = busy
        self.max_busy = max_busy
        self.ramp_s = ramp_s
        self.space_s = space_s

    @contextlib.contextmanager
    def _ledger(self) -> Iterator[_Ledger]:
        """The ledger under an exclusive lock, live entries only; written back on exit.

        Entries keep the keys every version reads (unknown ones are ignored on reading);
        when each grading was admitted, and the last admission by measurement, are kept
        beside them, so an older reader neither fails on them nor loses the line."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "admission.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.directory / LEDGER
            try:
                raw: Any = json.loads(path.read_text())
                state = _Ledger(
                    [_entry(e) for e in raw.get("running", [])],
                    [_entry(e) for e in raw.get("waiting", [])],
                    float(raw.get("measured_at", 0.0)),
                )
                admitted = raw.get("admitted", {})
                for e in state.running:
                    e.admitted = float(admitted.get(e.token, 0.0))
            except (OSError, ValueError, TypeError, AttributeError):
                state = _Ledger([], [])  # none yet, or unreadable: start over
            state.running = [e for e in state.running if e.alive()]
            state.waiting = [e for e in state.waiting if e.alive()]
            # a waiter that stopped asking (stopped, or its loop blocked) must not hold the
            # head of the line for ever: it queues again, at the back, when it asks again
            fresh = time.time() - self.stale_s
            state.waiting = [e for e in state.waiting if e.polled >= fresh]
            yield state
            out = {
                "running": [e.public() for e in state.running],
                "waiting": [e.public() for e in state.waiting],
                "admitted": {e.token: e.admitted for e in state.running},
                "measured_at": state.measured_at,
            }
            tmp = path.with_name(f".{LEDGER}.{os.getpid()}")
            tmp.write_text(json.dumps(out))
            tmp.replace(path)

    def _try(self, me: _Entry) -> tuple[bool, list[_Entry]]:
        """Admit ``me`` if it is first in line and fits; else queue it (once)."""
        with self._ledger() as state:
            running, waiting = state.running, state.waiting
            me.polled = time.time()
            mine = [e for e in waiting if e.token == me.token]
            if mine:
                mine[0].polled = me.polled
            else:
                waiting.append(me)
            first = waiting[0].token == me.token
            used = sum(e.cost for e in running)
            fits = used + me.cost <= self.capacity.cores + 1e-9
            measured = False
            if first and running and not fits:
                fits = measured = self._fits_by_measure(state, me)
            calm = True
            if running and fits:
                p = self.pressure()
                calm = p is None or p < self.hold_pressure
            if first and (not running or (fits and calm)):
                state.waiting = [e for e in waiting if e.token != me.token]
                me.admitted = time.time()
                if measured:
                    state.measured_at = me.admitted
                running.append(me)
                return True, list(running)
            return False, list(running)

    def _fits_by_measure(self, state: _Ledger, me: _Entry) -> bool:
        """Room by measurement (at most one such admission every ``space_s``, so each
        one starts to show in the busy cores before the next): the machine's recent busy cores, plus
        the gradings admitted too recently to show in them and ``me``, each charged what
        a grading measures here (the busy cores per older grading, half again for bursts;
        at least a third and at most all of its declared cost), fit in ``max_busy`` of the
        cores."""
        now = time.time()
        if now - state.measured_at < self.space_s:
            return False
        busy = None if self.busy is None else self.busy()
        if busy is None:
            return False
        young = [e for e in state.running if now - e.admitted < self.ramp_s] + [me]
        grown = len(state.running) + 1 - len(young)
        each = BURST * busy / grown if grown else math.inf
        charged = sum(min(e.cost, max(each, e.cost / 3)) for e in young)
        return busy + charged <= self.max_busy * self.capacity.cores + 1e-9

    def _drop(self, token: str) -> None:
        with self._ledger() as state:
            state.running = [e for e in state.running if e.token != token]
            state.waiting = [e for e in state.waiting if e.token != token]

    def status(self) -> dict[str, list[dict[str, Any]]]:
        """The live ledger: running and waiting gradings (for ``infragym doctor``)."""
        with self._ledger() as state:
            return {
                "running": [vars(e) for e in state.running],
                "waiting": [vars(e) for e in state.waiting],
            }

    @contextlib.asynccontextmanager
    async def slot(
        self, cost: float, label: str, progress: Callable[[str], None] = lambda m: None
    ) -> AsyncIterator[float]:
        """Hold ``cost`` cores of the machine while inside; yields the seconds waited."""
        if not math.isfinite(cost) or cost <= 0:
            raise ConfigError(f"a grading's cost must be a number of cores > 0, not {cost!r}")
        pid = os.getpid()
        me = _Entry(secrets.token_hex(8), pid, pid_start_time(pid), cost, label, time.time())
        t0 = time.monotonic()
        reported = -math.inf
        try:
            while True:
                admitted, running = self._try(me)
                if admitted:
                    break
                now = time.monotonic()
                if now - reported >= REPORT_EVERY_S:
                    reported = now
                    used = sum(e.cost for e in running)
                    progress(
                        f"waiting for room to grade: {len(running)} grading(s) use "
                        f"{used:g} of {self.capacity.cores:g} cores ({self.capacity.source}); "
                        f"this one needs {cost:g}"
                    )
                await asyncio.sleep(self.poll_s)
            yield time.monotonic() - t0
        finally:
            self._drop(me.token)
