"""Faults: each has ``apply`` and ``heal`` and knows which hosts it touches.

A fault instance owns every kernel object it makes (its own nft table, its own qdisc, its
own proxy link), so several faults compose and each heals independently. ``apply`` and
``heal`` are synchronous and fast (milliseconds); the nemesis runs them in a worker thread
so a running workload's event loop never stalls while a fault is applied.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError, ResourceError
from ..sandbox import Cluster, Host
from ..sandbox._sys import nft, remount_tmpfs_size, run


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


def _check_hosts(cluster: Cluster, names: Iterable[str]) -> list[Host]:
    return [cluster.host(n) for n in names]


def _table(label: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in label)
    return f"infragym_{safe}"[:60]


def _drop_table(netns: str, table: str) -> None:
    run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", table], check=False)


# -- process faults ---------------------------------------------------------------------


class Crash(Fault):
    """Kill every process of a host (SIGKILL through its cgroup); heal restarts services."""

    kind = "crash"

    def __init__(self, host: str, label: str | None = None, restart: bool = True) -> None:
        super().__init__(label)
        self.host = host
        self.restart = restart

    def targets(self) -> tuple[str, ...]:
        return (self.host,)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        killed = cluster.host(self.host).kill_all()
        return {"killed": killed}

    def heal(self, cluster: Cluster) -> None:
        if self.restart:
            cluster.host(self.host).restart()


class Pause(Fault):
    """Freeze every process of a host (cgroup freezer); heal thaws them."""

    kind = "pause"

    def __init__(self, host: str, label: str | None = None) -> None:
        super().__init__(label)
        self.host = host

    def targets(self) -> tuple[str, ...]:
        return (self.host,)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        cluster.host(self.host).freeze()
        return {}

    def heal(self, cluster: Cluster) -> None:
        cluster.host(self.host).thaw()


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
        if not 0.0 < probability <= 1.0:
            raise ConfigError(f"loss probability must be in (0, 1], not {probability}")
        if not hosts:
            raise ConfigError("packet loss needs at least one host")
        self.hosts = tuple(hosts)
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
    """Limit what a host can send to ``rate_bps`` bits per second (a tbf qdisc on eth0)."""

    kind = "bandwidth"

    def __init__(self, hosts: Sequence[str], rate_bps: int, label: str | None = None) -> None:
        super().__init__(label)
        if rate_bps < 8_000:
            raise ConfigError(f"bandwidth limit must be at least 8000 bit/s, not {rate_bps}")
        if not hosts:
            raise ConfigError("a bandwidth limit needs at least one host")
        self.hosts = tuple(hosts)
        self.rate_bps = rate_bps

    def targets(self) -> tuple[str, ...]:
        return self.hosts

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        # burst of ~10 ms of traffic (at least a few MTUs) keeps the shaping smooth
        burst = max(self.rate_bps // 8 // 100, 4 * 1514)
        for host in _check_hosts(cluster, self.hosts):
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
                    f"{self.rate_bps}bit",
                    "burst",
                    str(burst),
                    "latency",
                    "200ms",
                ]
            )
        return {"rate_bps": self.rate_bps}

    def heal(self, cluster: Cluster) -> None:
        for host in _check_hosts(cluster, self.hosts):
            run(["tc", "-n", host.netns, "qdisc", "del", "dev", "eth0", "root"], check=False)


# -- storage ----------------------------------------------------------------------------


class DiskFull(Fault):
    """Shrink a host's data tmpfs to what is already used, so every new write gets ENOSPC."""

    kind = "disk-full"
    BALLAST = ".infragym-disk-full"

    def __init__(self, host: str, label: str | None = None) -> None:
        super().__init__(label)
        self.host = host
        self._size: int | None = None

    def targets(self) -> tuple[str, ...]:
        return (self.host,)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.host)
        st = os.statvfs(host.data_dir)
        self._size = st.f_blocks * st.f_frsize
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
        host = cluster.host(self.host)
        (host.data_dir / self.BALLAST).unlink(missing_ok=True)
        if self._size is not None:
            remount_tmpfs_size(host.data_dir, self._size)


@dataclass(frozen=True)
class FaultSpec:
    """A serialisable description of a fault, as schedules hold them."""

    kind: str
    targets: tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)


class ClockSkew(Fault):
    """Move a host's clock by ``offset_s`` through libfaketime (cluster built with faketime)."""

    kind = "clock-skew"

    def __init__(self, host: str, offset_s: float, label: str | None = None) -> None:
        super().__init__(label)
        if offset_s == 0:
            raise ConfigError("a clock skew of 0 s does nothing; give a non-zero offset")
        self.host = host
        self.offset_s = offset_s

    def targets(self) -> tuple[str, ...]:
        return (self.host,)

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        cluster.host(self.host).set_clock_offset(self.offset_s)
        return {"offset_s": self.offset_s}

    def heal(self, cluster: Cluster) -> None:
        cluster.host(self.host).set_clock_offset(0.0)
