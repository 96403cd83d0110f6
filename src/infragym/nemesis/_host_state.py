"""The per-host record that lets faults of one host's single resources compose.

Faults that act on a per-host resource there is only one of (the freezer, the data disk,
the root qdisc, the faketime file, the host's services) share a record of the host, kept
here and keyed by the cluster: the resource changes when the first such fault of a host is
applied and is restored when the last one heals (Pause, Crash, DiskFull), or follows the
active faults (Bandwidth: the lowest active rate; ClockSkew: the offset of the most
recently applied one still active). Network faults that own their kernel objects (their
own nft table, their own proxy link) need no record.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..sandbox import Cluster

if TYPE_CHECKING:
    from ._fault import Fault


@dataclass(eq=False)
class HostFaults:
    """What the faults sharing one host's resources have done to it (under ``lock``).

    Dicts keyed by fault object keep insertion order, so "most recent" is "last".
    """

    lock: threading.RLock = field(default_factory=threading.RLock)
    pauses: dict[Fault, None] = field(default_factory=dict)
    crashes: dict[Fault, None] = field(default_factory=dict)
    restart_wanted: bool = False
    disk_full: dict[Fault, None] = field(default_factory=dict)
    disk_size: int | None = None
    ballast: str | None = None  # the ballast file's name while the disk is full
    bandwidth: dict[Fault, int] = field(default_factory=dict)
    clock: dict[Fault, float] = field(default_factory=dict)


_REGISTRY: weakref.WeakKeyDictionary[Cluster, dict[str, HostFaults]] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def host_faults(cluster: Cluster, host: str) -> HostFaults:
    """The record of ``host`` in ``cluster``, made on first use."""
    with _REGISTRY_LOCK:
        hosts = _REGISTRY.setdefault(cluster, {})
        state = hosts.get(host)
        if state is None:
            state = hosts[host] = HostFaults()
        return state


def paused_by_faults(cluster: Cluster, host: str) -> bool:
    """Whether a Pause fault of ``host`` is active (applied, or failed and not yet healed)."""
    state = host_faults(cluster, host)
    with state.lock:
        return bool(state.pauses)
