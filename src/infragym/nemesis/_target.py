"""Fire-time targets: the host a fault hits, chosen when it fires rather than when the
schedule is made ("whichever load balancer holds the virtual IP now").

A :class:`FaultTarget` wraps ``pick(cluster)``, a function the task gives that looks at the
live cluster (a file on a host's data disk, ``host.run``, a request through
``cluster.run_client``) and returns a host's name, or None when no host fits right now
(then the fault is skipped, and the timeline says so). It runs in the nemesis's worker
thread, once per apply; the fault's heal acts on the host its apply chose. Faults of one
host (crash, pause, disk-full, clock-skew) and the isolating partition accept one in place
of a host name; a schedule names one as ``"@name"`` with ``Nemesis(targets={"name": ...})``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import ConfigError
from ..sandbox import Cluster

Pick = Callable[[Cluster], "str | None"]
MARK = "@"
"""A schedule's spec names a fire-time target as ``@name``."""


class FaultTarget:
    """The host ``pick(cluster)`` names when the fault fires (None: none now, skip)."""

    def __init__(self, pick: Pick, name: str | None = None) -> None:
        if not callable(pick):
            raise ConfigError(f"a fire-time target needs a function of the cluster, not {pick!r}")
        self.pick = pick
        self.name = name or getattr(pick, "__name__", "target")

    def resolve(self, cluster: Cluster) -> str | None:
        """The host to hit now: a name of the cluster's hosts, or None (skip the fault)."""
        host = self.pick(cluster)
        if host is None:
            return None
        if not isinstance(host, str) or host not in cluster.names:
            raise ConfigError(
                f"fire-time target {self.name!r} chose {host!r}, which is no host of the "
                f"cluster (hosts: {', '.join(cluster.names)}); return a host's name or None"
            )
        return host

    @classmethod
    def holding(cls, address: str, among: Sequence[str] | None = None) -> FaultTarget:
        """The first host (of ``among``, default all) whose network namespace holds
        ``address`` now: the primary of a virtual IP (keepalived's MASTER)."""

        def pick(cluster: Cluster) -> str | None:
            for name in among if among is not None else cluster.names:
                if address in host_addresses(cluster, name):
                    return name
            return None

        return cls(pick, f"holder of {address}")

    def __repr__(self) -> str:
        return f"FaultTarget({self.name})"


def host_addresses(cluster: Cluster, host: str) -> list[str]:
    """The IPv4 addresses host ``host``'s interfaces hold now, read from outside it."""
    netns = cluster.host(host).netns
    r = subprocess.run(
        ["ip", "-n", netns, "-4", "-o", "addr", "show"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if r.returncode != 0:
        raise ConfigError(f"cannot read the addresses of {host}: {r.stderr.strip()}")
    out = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            out.append(parts[parts.index("inet") + 1].split("/")[0])
    return out


def as_target(host: Any) -> FaultTarget | None:
    """``host`` as a fire-time target: a FaultTarget as is, a function wrapped, a name None."""
    if isinstance(host, FaultTarget):
        return host
    if callable(host):
        return FaultTarget(host)
    return None
