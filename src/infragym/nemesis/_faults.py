"""Faults: each has ``apply`` and ``heal`` and knows which hosts it touches.

Network faults own every kernel object they make (their own nft table, their own proxy
link), so several of them compose and each heals independently. Faults that act on a
per-host resource there is only one of (the freezer, the data disk, the root qdisc, the
faketime file, the host's services) share a per-host record instead, kept here and keyed by
the cluster: the resource changes when the first such fault of a host is applied and is
restored when the last one heals (Pause, Crash, DiskFull), or follows the active faults
(Bandwidth: the lowest active rate; ClockSkew: the offset of the most recently applied
one still active). Healing a fault that is not active is a no-op, so heals can be retried.

``apply`` and ``heal`` are synchronous and fast (milliseconds); the nemesis runs them in a
worker thread so a running workload's event loop never stalls while a fault is applied.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import os
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import CapabilityError, ConfigError, ResourceError
from ..sandbox import Cluster, Host
from ..sandbox._sys import nft, remount_tmpfs_size, run

MAX_RATE_BPS = 10**12
MAX_CLOCK_OFFSET_S = 10.0**9


@dataclass(eq=False)
class _HostFaults:
    """What the faults sharing one host's resources have done to it (under ``lock``).

    Dicts keyed by fault object keep insertion order, so "most recent" is "last".
    """

    lock: threading.RLock = field(default_factory=threading.RLock)
    pauses: dict[Fault, None] = field(default_factory=dict)
    crashes: dict[Fault, None] = field(default_factory=dict)
    restart_wanted: bool = False
    disk_full: dict[Fault, None] = field(default_factory=dict)
    disk_size: int | None = None
    bandwidth: dict[Fault, int] = field(default_factory=dict)
    clock: dict[Fault, float] = field(default_factory=dict)


_REGISTRY: weakref.WeakKeyDictionary[Cluster, dict[str, _HostFaults]] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def _host_faults(cluster: Cluster, host: str) -> _HostFaults:
    with _REGISTRY_LOCK:
        hosts = _REGISTRY.setdefault(cluster, {})
        state = hosts.get(host)
        if state is None:
            state = hosts[host] = _HostFaults()
        return state


def paused_by_faults(cluster: Cluster, host: str) -> bool:
    """Whether a Pause fault of ``host`` is active (applied, or failed and not yet healed)."""
    state = _host_faults(cluster, host)
    with state.lock:
        return bool(state.pauses)


class Fault(ABC):
    """A fault with a lifecycle. ``kind`` names the family, ``label`` this instance."""

    kind: str = "fault"

    def __init__(self, label: str | None = None) -> None:
        self.label = label or self.kind
        self.applied = False

    @abstractmethod
    def targets(self) -> tuple[str, ...]:
        """The hosts this fault acts on (for the timeline and availability windows)."""

    @abstractmethod
    def apply(self, cluster: Cluster) -> dict[str, Any]:
        """Inflict the fault; return details for the timeline."""

    @abstractmethod
    def heal(self, cluster: Cluster) -> None:
        """Undo the fault. Must be safe to call when apply failed midway."""

    async def apply_async(self, cluster: Cluster) -> dict[str, Any]:
        """Apply without blocking the event loop that drives the workload."""
        return await asyncio.to_thread(self.apply, cluster)

    async def heal_async(self, cluster: Cluster) -> None:
        await asyncio.to_thread(self.heal, cluster)

    def describe(self) -> str:
        return f"{self.kind}({', '.join(self.targets())})"

    def _bad(self, what: str) -> ConfigError:
        return ConfigError(f"{self.kind} fault {self.label!r}: {what}")

    def _number(self, name: str, value: object) -> float:
        """``value`` as a finite float, or a ConfigError naming this fault and ``name``."""
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                x = float(value)
            except (OverflowError, ValueError):
                x = math.nan
            if math.isfinite(x):
                return x
        raise self._bad(f"{name} must be a finite number, not {value!r}")

    def _one_host(self, host: object) -> str:
        if not isinstance(host, str):
            raise self._bad(
                f"{self.kind} takes exactly one host, not {host!r}; give one fault per host"
            )
        return host

    def _hosts(self, hosts: object) -> tuple[str, ...]:
        if isinstance(hosts, str) or not isinstance(hosts, Iterable):
            raise self._bad(f"hosts must be a list of host names, not {hosts!r}")
        out = tuple(hosts)
        if not out:
            raise self._bad("needs at least one host")
        if not all(isinstance(h, str) for h in out) or len(set(out)) != len(out):
            raise self._bad(f"hosts must be distinct host names, not {list(out)}")
        return out


def _check_hosts(cluster: Cluster, names: Iterable[str]) -> list[Host]:
    return [cluster.host(n) for n in names]


def _table(label: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in label)
    return f"infragym_{safe}"[:60]


def _drop_table(netns: str, table: str) -> None:
    run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", table], check=False)


# -- process faults ---------------------------------------------------------------------


class Crash(Fault):
    """Kill every process of a host (SIGKILL through its cgroup); heal restarts services.

    Crashes of one host overlap: each apply kills whatever runs, and services are restarted
    only when the last active crash of the host heals (if any of them asked for a restart).
    On a paused host the restart waits for the thaw.
    """

    kind = "crash"

    def __init__(self, host: str, label: str | None = None, restart: bool = True) -> None:
        super().__init__(label)
        self.host = self._one_host(host)
        self.restart = restart

    def targets(self) -> tuple[str, ...]:
        return (self.host,)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.host)
        state = _host_faults(cluster, self.host)
        with state.lock:
            state.crashes[self] = None
            killed = host.kill_all()
        return {"killed": killed}

    def heal(self, cluster: Cluster) -> None:
        state = _host_faults(cluster, self.host)
        with state.lock:
            if self not in state.crashes:
                return
            if len(state.crashes) == 1:
                if self.restart or state.restart_wanted:
                    cluster.host(self.host).restart()
                state.restart_wanted = False
            elif self.restart:
                state.restart_wanted = True
            del state.crashes[self]


class Pause(Fault):
    """Freeze every process of a host (cgroup freezer); heal thaws them.

    Pauses of one host overlap: the host stays frozen until the last of them heals.
    """

    kind = "pause"

    def __init__(self, host: str, label: str | None = None) -> None:
        super().__init__(label)
        self.host = self._one_host(host)

    def targets(self) -> tuple[str, ...]:
        return (self.host,)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.host)
        state = _host_faults(cluster, self.host)
        with state.lock:
            state.pauses[self] = None
            host.freeze()  # idempotent, so a retried or second pause is harmless
        return {}

    def heal(self, cluster: Cluster) -> None:
        state = _host_faults(cluster, self.host)
        with state.lock:
            if self not in state.pauses:
                return
            if len(state.pauses) == 1:
                cluster.host(self.host).thaw()
            del state.pauses[self]


# -- network faults ---------------------------------------------------------------------


class Partition(Fault):
    """Cut links between hosts with nft drop rules in each host's namespace.

    ``blocked`` maps each host to the hosts it must not exchange packets with; it is made
    symmetric. Constructors cover the usual topologies: ``isolate``, ``groups`` (e.g.
    majority / minority) and ``bridge``.
    """

    kind = "partition"

    def __init__(self, blocked: Mapping[str, Iterable[str]], label: str | None = None) -> None:
        super().__init__(label)
        sym: dict[str, set[str]] = {}
        for a, bs in blocked.items():
            for b in bs:
                if a == b:
                    raise ConfigError(f"a partition cannot cut host {a!r} from itself")
                sym.setdefault(a, set()).add(b)
                sym.setdefault(b, set()).add(a)
        if not sym:
            raise ConfigError("a partition must cut at least one link")
        self.blocked = {k: frozenset(v) for k, v in sorted(sym.items())}

    @classmethod
    def groups(cls, groups: Sequence[Sequence[str]], label: str | None = None) -> Partition:
        """Hosts talk only within their group: ``[["n1", "n2"], ["n3"]]``."""
        flat = [h for g in groups for h in g]
        if len(groups) < 2 or any(not g for g in groups):
            raise ConfigError("a partition needs at least two non-empty groups")
        if len(set(flat)) != len(flat):
            raise ConfigError(f"a host appears in two groups of the partition {groups}")
        blocked: dict[str, set[str]] = {}
        for i, g in enumerate(groups):
            others = [h for j, o in enumerate(groups) if j != i for h in o]
            for h in g:
                blocked[h] = set(others)
        return cls(blocked, label)

    @classmethod
    def isolate(cls, host: str, hosts: Sequence[str], label: str | None = None) -> Partition:
        if host not in hosts:
            raise ConfigError(f"cannot isolate {host!r}: not one of {list(hosts)}")
        return cls.groups([[host], [h for h in hosts if h != host]], label)

    @classmethod
    def bridge(cls, hosts: Sequence[str], label: str | None = None) -> Partition:
        """Two halves that cannot talk, and one host in the middle that talks to both."""
        if len(hosts) < 3:
            raise ConfigError("a bridge partition needs at least 3 hosts")
        mid = len(hosts) // 2
        left, middle, right = hosts[:mid], hosts[mid], hosts[mid + 1 :]
        del middle
        return cls({h: set(right) for h in left}, label)

    def targets(self) -> tuple[str, ...]:
        return tuple(self.blocked)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        table = _table(self.label)
        for name, peers in self.blocked.items():
            host = cluster.host(name)
            addrs = ", ".join(cluster.host(p).address for p in sorted(peers))
            nft(
                host.netns,
                f"""
table inet {table} {{
  chain input {{ type filter hook input priority -10; policy accept;
    ip saddr {{ {addrs} }} drop
  }}
  chain output {{ type filter hook output priority -10; policy accept;
    ip daddr {{ {addrs} }} drop
  }}
}}""",
            )
        return {"blocked": {k: sorted(v) for k, v in self.blocked.items()}}

    def heal(self, cluster: Cluster) -> None:
        table = _table(self.label)
        for name in self.blocked:
            _drop_table(cluster.host(name).netns, table)


class PacketLoss(Fault):
    """Drop a random fraction of the packets a host receives (nft ``numgen random``)."""

    kind = "loss"

    def __init__(self, hosts: Sequence[str], probability: float, label: str | None = None) -> None:
        super().__init__(label)
        probability = self._number("probability", probability)
        if not 0.0 < probability <= 1.0:
            raise self._bad(f"loss probability must be in (0, 1], not {probability}")
        self.hosts = self._hosts(hosts)
        self.probability = probability

    def targets(self) -> tuple[str, ...]:
        return self.hosts

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        table = _table(self.label)
        per_10k = round(self.probability * 10_000)
        for host in _check_hosts(cluster, self.hosts):
            nft(
                host.netns,
                f"""
table inet {table} {{
  chain input {{ type filter hook input priority -10; policy accept;
    iifname "eth0" numgen random mod 10000 < {per_10k} drop
  }}
}}""",
            )
        return {"probability": self.probability}

    def heal(self, cluster: Cluster) -> None:
        for host in _check_hosts(cluster, self.hosts):
            _drop_table(host.netns, _table(self.label))


class Bandwidth(Fault):
    """Limit what a host can send to ``rate_bps`` bits per second (a tbf qdisc on eth0).

    A host has one root qdisc, so limits on one host overlap: the lowest active rate
    applies, and the qdisc is removed when the last limit heals.
    """

    kind = "bandwidth"

    def __init__(self, hosts: Sequence[str], rate_bps: int, label: str | None = None) -> None:
        super().__init__(label)
        rate = self._number("rate_bps", rate_bps)
        if not 8_000 <= rate <= MAX_RATE_BPS:
            raise self._bad(
                f"rate_bps must be between 8000 and {MAX_RATE_BPS} bit/s, not {rate_bps}"
            )
        self.hosts = self._hosts(hosts)
        self.rate_bps = int(rate)

    def targets(self) -> tuple[str, ...]:
        return self.hosts

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        effective = {}
        for host in _check_hosts(cluster, self.hosts):
            state = _host_faults(cluster, host.name)
            with state.lock:
                state.bandwidth[self] = self.rate_bps
                effective[host.name] = min(state.bandwidth.values())
                _set_rate(host, effective[host.name])
        return {"rate_bps": self.rate_bps, "effective_bps": effective}

    def heal(self, cluster: Cluster) -> None:
        for host in _check_hosts(cluster, self.hosts):
            state = _host_faults(cluster, host.name)
            with state.lock:
                if self not in state.bandwidth:
                    continue
                rest = [r for f, r in state.bandwidth.items() if f is not self]
                _set_rate(host, min(rest) if rest else None)
                del state.bandwidth[self]


def _set_rate(host: Host, rate_bps: int | None) -> None:
    """Shape what ``host`` sends to ``rate_bps``, or remove the shaping (``None``)."""
    if rate_bps is None:
        run(["tc", "-n", host.netns, "qdisc", "del", "dev", "eth0", "root"], check=False)
        return
    # burst of ~10 ms of traffic (at least a few MTUs) keeps the shaping smooth
    burst = max(rate_bps // 8 // 100, 4 * 1514)
    run(
        [
            "tc",
            "-n",
            host.netns,
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            f"{rate_bps}bit",
            "burst",
            str(burst),
            "latency",
            "200ms",
        ]
    )


# -- storage ----------------------------------------------------------------------------


class DiskFull(Fault):
    """Shrink a host's data tmpfs to what is already used, so every new write gets ENOSPC.

    Disk-full faults of one host overlap: the first fills the disk, the last to heal gives
    it back its original size (read once per host, before the first shrink).
    """

    kind = "disk-full"
    BALLAST = ".infragym-disk-full"

    def __init__(self, host: str, label: str | None = None) -> None:
        super().__init__(label)
        self.host = self._one_host(host)

    def targets(self) -> tuple[str, ...]:
        return (self.host,)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.host)
        state = _host_faults(cluster, self.host)
        with state.lock:
            already = bool(state.disk_full) and self not in state.disk_full
            state.disk_full[self] = None
            if already:
                return {"already_full": True}
            st = os.statvfs(host.data_dir)
            if state.disk_size is None:
                state.disk_size = st.f_blocks * st.f_frsize
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            # tmpfs treats size=0 as unlimited, so keep one page and fill it with ballast
            remount_tmpfs_size(host.data_dir, max(used, st.f_frsize))
            st = os.statvfs(host.data_dir)
            free = st.f_bavail * st.f_frsize
            if free > 0:
                try:
                    with open(host.data_dir / self.BALLAST, "wb") as fh:
                        fh.write(b"\0" * free)
                except OSError:
                    pass
            st = os.statvfs(host.data_dir)
            if st.f_bavail != 0:
                raise ResourceError(f"could not fill the data disk of {self.host}")
        return {"used_bytes": used}

    def heal(self, cluster: Cluster) -> None:
        state = _host_faults(cluster, self.host)
        with state.lock:
            if self not in state.disk_full:
                return
            if len(state.disk_full) == 1:
                host = cluster.host(self.host)
                (host.data_dir / self.BALLAST).unlink(missing_ok=True)
                if state.disk_size is not None:
                    remount_tmpfs_size(host.data_dir, state.disk_size)
            del state.disk_full[self]


@dataclass(frozen=True)
class FaultSpec:
    """A serialisable description of a fault, as schedules hold them."""

    kind: str
    targets: tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)


class ClockSkew(Fault):
    """Move a host's clock by ``offset_s`` through libfaketime (cluster built with faketime).

    Skews of one host overlap: the clock follows the most recently applied skew still
    active, and returns to true time when none is.
    """

    kind = "clock-skew"

    def __init__(self, host: str, offset_s: float, label: str | None = None) -> None:
        super().__init__(label)
        self.host = self._one_host(host)
        offset = self._number("offset_s", offset_s)
        if offset == 0:
            raise self._bad("a clock skew of 0 s does nothing; give a non-zero offset_s")
        if abs(offset) > MAX_CLOCK_OFFSET_S:
            raise self._bad(f"offset_s must be within +-{MAX_CLOCK_OFFSET_S:.0f} s, not {offset}")
        self.offset_s = offset

    def targets(self) -> tuple[str, ...]:
        return (self.host,)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.host)
        if not host.faketime:
            raise CapabilityError(
                f"clock skew on {self.host}: the cluster was built without libfaketime; "
                "build the cluster with faketime=True (Cluster(..., faketime=True))"
            )
        state = _host_faults(cluster, self.host)
        with state.lock:
            state.clock.pop(self, None)
            state.clock[self] = self.offset_s
            host.set_clock_offset(self.offset_s)
        return {"offset_s": self.offset_s}

    def heal(self, cluster: Cluster) -> None:
        state = _host_faults(cluster, self.host)
        with state.lock:
            if self not in state.clock:
                return
            rest = [o for f, o in state.clock.items() if f is not self]
            cluster.host(self.host).set_clock_offset(rest[-1] if rest else 0.0)
            del state.clock[self]
