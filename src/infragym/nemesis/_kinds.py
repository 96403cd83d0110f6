"""The fault kinds, in one registry: adding a kind is one entry in :data:`KINDS` (and its
class).

Each :class:`FaultKind` says what the kind is called, the class that inflicts it, the
capabilities of the machine it needs (``infragym doctor`` probes them), the parameters a
:class:`FaultSpec` of it may give, how a spec becomes a fault, how a random schedule draws
one, and what the cluster itself must offer. :func:`~._schedule.build_fault`,
:func:`~._schedule.random_schedule`, the nemesis and the capability probe all read it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from ..sandbox import Cluster
from ._clock_skew import ClockSkew
from ._data_faults import DamagedData, RunawayLog
from ._disk_full import DiskFull
from ._fault import Fault, FaultSpec
from ._latency import Latency
from ._network_faults import Bandwidth, PacketLoss, Partition
from ._process_faults import Crash, Pause

__all__ = ["KINDS", "TOPOLOGIES", "FaultKind"]

Params = dict[str, Any]
TOPOLOGIES = ("isolate", "majority", "bridge")


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault and everything the platform needs to know about it."""

    name: str
    fault: type[Fault]
    description: str
    needs: tuple[str, ...]
    """Capabilities (names of :func:`~._doctor.probe` results) the machine must have."""
    params: tuple[str, ...]
    """The parameters a spec of this kind may give."""
    build: Callable[[tuple[str, ...], Params, str, Sequence[str]], Fault]
    """``(targets, params, label, cluster hosts)`` to the fault, targets already checked."""
    draw: Callable[[random.Random, str, Sequence[str]], FaultSpec]
    """``(rng, victim, hosts)`` to a random schedule's spec of this kind."""
    one_host: Callable[[Params], bool] = lambda params: False
    """Whether a spec with these params takes exactly one target."""
    min_hosts: int = 1
    """The fewest cluster hosts a random schedule may use this kind with."""
    cluster_problem: Callable[[Cluster], str | None] = lambda cluster: None
    """Why ``cluster`` cannot take this kind of fault (a CapabilityError), or None."""


def _always(params: Params) -> bool:
    return True


def _partition_spec(rng: random.Random, hosts: Sequence[str]) -> FaultSpec:
    choices = ["isolate"] + (["majority", "bridge"] if len(hosts) >= 3 else [])
    topo = rng.choice(choices)
    if topo == "isolate":
        victim = rng.choice(list(hosts))
        return FaultSpec("partition", (victim,), (("topology", "isolate"),))
    shuffled = list(hosts)
    rng.shuffle(shuffled)
    return FaultSpec("partition", tuple(shuffled), (("topology", topo),))


def _partition(tg: tuple[str, ...], params: Params, label: str, hosts: Sequence[str]) -> Fault:
    topo = params.get("topology", "isolate")
    if topo == "isolate":
        return Partition.isolate(tg[0], hosts, label)
    if topo == "majority":
        minority = len(tg) // 2
        return Partition.groups([list(tg[minority:]), list(tg[:minority])], label)
    if topo == "bridge":
        return Partition.bridge(list(tg), label)
    raise ConfigError(
        f"fault {label}: unknown partition topology {topo!r} (known: {', '.join(TOPOLOGIES)})"
    )


def _latency(tg: tuple[str, ...], params: Params, label: str, hosts: Sequence[str]) -> Fault:
    include_client = params.get("include_client", False)
    if not isinstance(include_client, bool):
        raise ConfigError(
            f"latency fault {label!r}: include_client must be true or false, not {include_client!r}"
        )
    return Latency(
        tg,
        params.get("delay_s", 0.1),
        params.get("jitter_s", 0.0),
        label,
        include_client=include_client,
    )


def _flag(params: Mapping[str, Any], name: str, label: str) -> bool:
    v = params.get(name, True)
    if not isinstance(v, bool):
        raise ConfigError(f"fault {label}: {name} must be true or false, not {v!r}")
    return v


def _faketime(cluster: Cluster) -> str | None:
    if cluster.faketime:
        return None
    return (
        "clock-skew faults need libfaketime in the hosts' processes: "
        "build the cluster with faketime=True (Cluster(..., faketime=True))"
    )


_KIND_LIST = (
    FaultKind(
        "crash",
        Crash,
        "kill a host's processes (SIGKILL); the heal restarts its services (restart = "
        "false: it leaves them down, an incident someone must fix)",
        needs=("cluster", "cgroups"),
        params=("restart",),
        build=lambda tg, p, label, hosts: Crash(tg[0], label, restart=_flag(p, "restart", label)),
        draw=lambda rng, victim, hosts: FaultSpec("crash", (victim,)),
        one_host=_always,
    ),
    FaultKind(
        "pause",
        Pause,
        "freeze a host's processes (cgroup freezer); the heal thaws them",
        needs=("cluster", "freezer"),
        params=(),
        build=lambda tg, p, label, hosts: Pause(tg[0], label),
        draw=lambda rng, victim, hosts: FaultSpec("pause", (victim,)),
        one_host=_always,
    ),
    FaultKind(
        "partition",
        Partition,
        "cut links between hosts: isolate one, split off a minority, or a bridge",
        needs=("cluster", "nftables"),
        params=("topology",),
        build=_partition,
        draw=lambda rng, victim, hosts: _partition_spec(rng, hosts),
        one_host=lambda p: p.get("topology") in (None, "isolate"),
        min_hosts=2,
    ),
    FaultKind(
        "loss",
        PacketLoss,
        "drop a fraction (probability) of the hosts' packets at random",
        needs=("cluster", "nft-numgen"),
        params=("probability",),
        build=lambda tg, p, label, hosts: PacketLoss(tg, p.get("probability", 0.3), label),
        draw=lambda rng, victim, hosts: FaultSpec("loss", (victim,), (("probability", 0.3),)),
    ),
    FaultKind(
        "bandwidth",
        Bandwidth,
        "limit the hosts' outgoing bandwidth to rate_bps (tbf)",
        needs=("cluster", "tbf"),
        params=("rate_bps",),
        build=lambda tg, p, label, hosts: Bandwidth(tg, p.get("rate_bps", 1_000_000), label),
        draw=lambda rng, victim, hosts: FaultSpec(
            "bandwidth", (victim,), (("rate_bps", 1_000_000),)
        ),
    ),
    FaultKind(
        "latency",
        Latency,
        "delay the hosts' connections by delay_s +- jitter_s, through a TCP proxy",
        needs=("cluster", "tcp-proxy"),
        params=("delay_s", "jitter_s", "include_client"),
        build=_latency,
        draw=lambda rng, victim, hosts: FaultSpec(
            "latency", (victim,), (("delay_s", 0.1), ("jitter_s", 0.02))
        ),
        min_hosts=2,
    ),
    FaultKind(
        "disk-full",
        DiskFull,
        "fill a host's data disk",
        needs=("cluster", "tmpfs"),
        params=(),
        build=lambda tg, p, label, hosts: DiskFull(tg[0], label),
        draw=lambda rng, victim, hosts: FaultSpec("disk-full", (victim,)),
        one_host=_always,
    ),
    FaultKind(
        "clock-skew",
        ClockSkew,
        "move a host's clock by offset_s (libfaketime)",
        needs=("cluster", "libfaketime"),
        params=("offset_s",),
        build=lambda tg, p, label, hosts: ClockSkew(tg[0], p.get("offset_s", 60.0), label),
        draw=lambda rng, victim, hosts: FaultSpec(
            "clock-skew", (victim,), (("offset_s", rng.choice([-60.0, 60.0])),)
        ),
        one_host=_always,
        cluster_problem=_faketime,
    ),
)

_DATA_KINDS = (
    FaultKind(
        "runaway-log",
        RunawayLog,
        "a process of the host, as its user, appends to a log under /srv/data (path) at "
        "rate_bps until the disk is full (persist: until healed); reopen: it reopens the "
        "file for every write, so deleting it frees the space",
        needs=("cluster", "tmpfs"),
        params=("path", "rate_bps", "reopen", "persist"),
        build=lambda tg, p, label, hosts: RunawayLog(
            tg[0],
            label,
            p.get("path", "log/debug.log"),
            p.get("rate_bps", 1 << 20),
            p.get("reopen", False),
            p.get("persist", False),
        ),
        draw=lambda rng, victim, hosts: FaultSpec("runaway-log", (victim,)),
        one_host=_always,
    ),
    FaultKind(
        "damaged-data",
        DamagedData,
        "a crash (SIGKILL of every process) after which files of /srv/data are truncated, "
        "corrupted or deleted as files declares; the heal restarts the services (restart "
        "= false: it leaves them down)",
        needs=("cluster", "cgroups"),
        params=("files", "restart"),
        build=lambda tg, p, label, hosts: DamagedData(
            tg[0], label, p.get("files", ()), _flag(p, "restart", label)
        ),
        draw=lambda rng, victim, hosts: FaultSpec(
            "damaged-data", (victim,), (("files", ({"path": "**/*", "how": "truncate"},)),)
        ),
        one_host=_always,
    ),
)

KINDS: dict[str, FaultKind] = {k.name: k for k in (*_KIND_LIST, *_DATA_KINDS)}
"""Every fault kind by name, in the order ``infragym doctor`` lists them. A kind's name is
its class's ``kind`` (what histories record)."""
