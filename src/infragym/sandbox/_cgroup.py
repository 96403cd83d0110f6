"""Per-host control groups (cgroup v1: pids, memory, cpu, cpuacct, freezer; and, where the
machine mounts cgroup v2 beside them, a v2 group with no controller, for its pressure).

A host's cgroup is how the sandbox finds *every* process of that host, including ones that
double-forked away from their parent: crash kills the cgroup, pause freezes it, cleanup
empties and removes it. cpuacct counts the CPU time the host's processes used (the
grading's health check tells a system under test that burns the machine from an
overloaded machine by it). The v2 group (``/sys/fs/cgroup/unified``, a hybrid mount) gives
the host's own CPU pressure (``cpu.pressure``): how long its runnable tasks waited for a
CPU, exited ones included, which the machine-wide pressure cannot tell apart from the
harness's or another grading's waits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from .._errors import CapabilityError, ConfigError, ResourceError
from ._sys import psi_total_us

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory", "cpu", "cpuacct", "freezer")
UNIFIED = "unified"  # the cgroup v2 mount of a hybrid machine, under CGROUP_ROOT


def unified_available() -> bool:
    """Whether cgroup v2 is mounted beside v1 with pressure accounting (PSI)."""
    return (CGROUP_ROOT / UNIFIED / "cgroup.procs").exists() and (
        CGROUP_ROOT / UNIFIED / "cpu.pressure"
    ).exists()


def hierarchies() -> tuple[str, ...]:
    """The directories under CGROUP_ROOT a run's groups live in."""
    return (*CONTROLLERS, UNIFIED) if unified_available() else CONTROLLERS


PARENT = "infragym"
TCP_LIMIT_FILE = "memory.kmem.tcp.limit_in_bytes"


def cgroup_v1_available() -> tuple[bool, str]:
    missing = [c for c in CONTROLLERS if not (CGROUP_ROOT / c / "cgroup.procs").exists()]
    if missing:
        return False, (
            f"cgroup v1 controllers not mounted: {', '.join(missing)} "
            f"(infragym needs pids, memory, cpu, cpuacct and freezer under {CGROUP_ROOT})"
        )
    if not (CGROUP_ROOT / "memory" / TCP_LIMIT_FILE).exists():
        return False, (
            f"{CGROUP_ROOT / 'memory' / TCP_LIMIT_FILE} is missing: infragym charges each "
            "host's TCP buffers to its cgroup (a kernel with CONFIG_MEMCG_KMEM is needed)"
        )
    return True, (
        "cgroup v1 pids, memory (with TCP accounting), cpu, cpuacct and freezer are mounted"
    )


@dataclass(frozen=True)
class Limits:
    """Resource limits of one host. ``cpu`` is in cores (0 = unlimited).

    ``tcp_memory_bytes`` bounds the kernel memory of the host's TCP sockets (their send
    and receive buffers): without it, connections holding unread data pin the machine's
    shared TCP memory, which no memory limit counts, and starve every other host."""

    pids: int = 512
    memory_bytes: int = 1 << 30
    cpu: float = 0.0
    tcp_memory_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        if not isinstance(self.pids, int) or self.pids < 8:
            raise ConfigError(f"Limits.pids must be an integer >= 8, not {self.pids!r}")
        if not isinstance(self.memory_bytes, int) or self.memory_bytes < 16 << 20:
            raise ConfigError(
                f"Limits.memory_bytes must be an integer >= 16 MiB, not {self.memory_bytes!r}"
            )
        if (
            not isinstance(self.tcp_memory_bytes, int)
            or isinstance(self.tcp_memory_bytes, bool)
            or self.tcp_memory_bytes < 1 << 20
        ):
            raise ConfigError(
                "Limits.tcp_memory_bytes must be an integer >= 1 MiB, "
                f"not {self.tcp_memory_bytes!r}"
            )
        if not isinstance(self.cpu, (int, float)) or not (
            self.cpu == 0 or 0.01 <= self.cpu <= 1024
        ):
            raise ConfigError(
                f"Limits.cpu must be 0 (unlimited) or between 0.01 and 1024 cores, not {self.cpu!r}"
            )


class HostCgroup:
    """The set of per-controller cgroup directories of one host."""

    def __init__(self, relpath: str) -> None:
        self.relpath = relpath
        self.dirs = {c: CGROUP_ROOT / c / relpath for c in hierarchies()}

    def create(self, limits: Limits) -> None:
        ok, why = cgroup_v1_available()
        if not ok:
            raise CapabilityError(why)
        if UNIFIED in self.dirs:
            try:
                self.dirs[UNIFIED].mkdir(parents=True, exist_ok=True)
            except OSError:
                del self.dirs[UNIFIED]  # only a measurement: the host goes on without it
        try:
            for d in self.dirs.values():
                d.mkdir(parents=True, exist_ok=True)
            (self.dirs["pids"] / "pids.max").write_text(str(limits.pids))
            (self.dirs["memory"] / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            # socket buffers are charged to the cgroup only once it has a TCP limit
            tcp = self.dirs["memory"] / TCP_LIMIT_FILE
            tcp.write_text(str(limits.tcp_memory_bytes))
            if limits.cpu > 0:
                period = 100_000
                (self.dirs["cpu"] / "cpu.cfs_period_us").write_text(str(period))
                (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(int(limits.cpu * period)))
        except OSError as exc:
            raise ResourceError(f"cannot create cgroup {self.relpath}: {exc}") from exc

    def procs_files(self) -> list[str]:
        """Paths a freshly forked child writes its pid to (before exec)."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> list[int]:
        try:
            text = (self.dirs["pids"] / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        return [int(x) for x in text.split()]

    def cpu_stall_us(self) -> int | None:
        """Microseconds in which some process of the host waited for a CPU since the
        host was made (cgroup v2 ``cpu.pressure``, "some" total; None without it)."""
        d = self.dirs.get(UNIFIED)
        return None if d is None else psi_total_us(d / "cpu.pressure")

    def cpu_usage_s(self) -> float | None:
        """CPU seconds every process of the host has used since the host was made, those
        that exited included (None once the cgroup is gone)."""
        try:
            return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return None

    def exists(self) -> bool:
        return any(d.exists() for d in self.dirs.values())

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def frozen(self) -> bool:
        try:
            return (self.dirs["freezer"] / "freezer.state").read_text().strip() != "THAWED"
        except FileNotFoundError:
            return False

    def _set_freezer(self, state: str) -> None:
        f = self.dirs["freezer"] / "freezer.state"
        f.write_text(state)
        deadline = time.monotonic() + 5.0
        while f.read_text().strip() != state:
            if time.monotonic() > deadline:
                raise ResourceError(f"cgroup {self.relpath} did not reach {state} within 5 s")
            time.sleep(0.001)

    def kill_all(self, timeout: float = 5.0, spare_first: Collection[int] = ()) -> int:
        """SIGKILL every process until the cgroup is empty; returns how many were killed.

        ``spare_first`` are killed last (bwrap's monitors: left alive a moment, each reaps
        the init of its PID namespace instead of orphaning it to the machine's init). A
        frozen cgroup is thawed so the kills land, then frozen again: a crash during a
        pause leaves the host paused (and empty).
        """
        killed: set[int] = set()
        was_frozen = self.frozen()
        deadline = time.monotonic() + timeout
        spare = set(spare_first)
        spare_until = time.monotonic() + min(1.0, timeout / 2) if spare else 0.0
        try:
            while True:
                pids = self.pids()
                if not pids:
                    return len(killed)
                if spare and (set(pids) <= spare or time.monotonic() > spare_until):
                    spare = set()
                for pid in pids:
                    if pid in spare:
                        continue
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed.add(pid)
                    except ProcessLookupError:
                        pass
                if self.frozen():
                    self.thaw()
                if time.monotonic() > deadline:
                    raise ResourceError(
                        f"processes {pids} of cgroup {self.relpath} survived SIGKILL for "
                        f"{timeout} s"
                    )
                time.sleep(0.002)
        finally:
            if was_frozen and self.exists():
                self.freeze()

    def signal_all(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        """Kill what is left and remove the directories (idempotent)."""
        if not self.exists():
            return
        if self.frozen():
            self.thaw()
        self.kill_all()
        for d in self.dirs.values():
            _rmdir_retry(d)


def _rmdir_retry(d: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            # EBUSY while the last task's exit is still being accounted
            if time.monotonic() > deadline:
                raise ResourceError(f"cannot remove cgroup {d}: {exc}") from exc
            time.sleep(0.005)


def run_cpu_stall_us(run_id: str) -> int | None:
    """Microseconds in which some process of any host of the run waited for a CPU (its
    v2 group's pressure, which counts the hosts' groups below it; None without v2)."""
    return psi_total_us(CGROUP_ROOT / UNIFIED / PARENT / run_id / "cpu.pressure")


def set_run_cpu_shares(run_id: str, shares: int) -> None:
    """The weight of a run's hosts together against other runs' under the cpu controller
    (``cpu.shares``, default 1024). Best effort: a run whose group is gone is skipped."""
    group = CGROUP_ROOT / "cpu" / PARENT / run_id
    with contextlib.suppress(OSError):
        (group / "cpu.shares").write_text(str(shares))


def all_hosts_cpu_s() -> float | None:
    """CPU seconds every host of every run on this machine has used (the parent cpuacct
    group's usage, which keeps what removed hosts used); None without it."""
    try:
        return int((CGROUP_ROOT / "cpuacct" / PARENT / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return None


def run_cgroups(run_id: str) -> list[Path]:
    """Every per-controller directory of a run (for cleanup)."""
    return [
        CGROUP_ROOT / c / PARENT / run_id
        for c in (*CONTROLLERS, UNIFIED)
        if (CGROUP_ROOT / c / PARENT / run_id).exists()
    ]


def all_run_ids() -> set[str]:
    ids: set[str] = set()
    for c in (*CONTROLLERS, UNIFIED):
        base = CGROUP_ROOT / c / PARENT
        if base.exists():
            ids.update(p.name for p in base.iterdir() if p.is_dir())
    return ids


def remove_run_tree(run_id: str) -> int:
    """Kill every process under a run's cgroups and remove them; returns processes killed."""
    killed = 0
    hosts: set[str] = set()
    for d in run_cgroups(run_id):
        hosts.update(p.name for p in d.iterdir() if p.is_dir())
    for h in sorted(hosts):
        cg = HostCgroup(f"{PARENT}/{run_id}/{h}")
        if cg.frozen():
            cg.thaw()
        killed += cg.kill_all()
        for d in cg.dirs.values():
            _rmdir_retry(d)
    for d in run_cgroups(run_id):
        _rmdir_retry(d)
    return killed
