"""Fire-time targets: the host a fault hits, chosen when it fires rather than when the
schedule is made ("whichever load balancer holds the virtual IP now").

A :class:`FaultTarget` wraps ``pick(cluster)``, a function the task gives that looks at the
live cluster (a file on a host's data disk, ``host.run``, a request through
``cluster.run_client``) and returns a host's name, or None when no host fits right now
(then the fault is skipped, and the timeline says so). It runs in a thread of its own,
once per apply, for at most ``timeout_s``: a pick may ask the system under test, which may
never answer, and the heal and the grading's end wait for the apply, so a pick that has
not returned by then skips the fault too (left to finish on its own). The fault's heal
acts on the host its apply chose. Faults of one host (crash, pause, disk-full,
clock-skew) and the isolating partition accept one in place of a host name; a schedule
names one as ``"@name"`` with ``Nemesis(targets={"name": ...})``.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import ConfigError
from ..sandbox import Cluster

Pick = Callable[[Cluster], "str | None"]
MARK = "@"
"""A schedule's spec names a fire-time target as ``@name``."""
PICK_TIMEOUT_S = 30.0


class FaultTarget:
    """The host ``pick(cluster)`` names when the fault fires (None: none now, skip)."""

    def __init__(
        self, pick: Pick, name: str | None = None, timeout_s: float = PICK_TIMEOUT_S
    ) -> None:
        if not callable(pick):
            raise ConfigError(f"a fire-time target needs a function of the cluster, not {pick!r}")
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, (int, float))
            or not (0 < timeout_s < float("inf"))
        ):
            raise ConfigError(f"timeout_s must be a number of seconds > 0, not {timeout_s!r}")
        self.pick = pick
        self.name = name or getattr(pick, "__name__", "target")
        self.timeout_s = float(timeout_s)

    def resolve(self, cluster: Cluster) -> str | None:
        """The host to hit now: a name of the cluster's hosts, or None (skip the fault)."""
        return self.choose(cluster)[0]

    def choose(self, cluster: Cluster) -> tuple[str | None, dict[str, Any]]:
        """:meth:`resolve`'s host, with the timeline's detail of the choice."""
        done: list[tuple[bool, Any]] = []

        def call() -> None:
            try:
                done.append((True, self.pick(cluster)))
            except BaseException as exc:
                done.append((False, exc))

        thread = threading.Thread(target=call, name=f"fault target {self.name}", daemon=True)
        thread.start()
        thread.join(self.timeout_s)
        detail: dict[str, Any] = {"target": self.name}
        if not done:
            skipped = f"the target named no host within {self.timeout_s:g} s"
            return None, {**detail, "skipped": skipped}
        ok, host = done[0]
        if not ok:
            raise host
        if host is None:
            return None, {**detail, "skipped": "the target named no host"}
        if not isinstance(host, str) or host not in cluster.names:
            raise ConfigError(
                f"fire-time target {self.name!r} chose {host!r}, which is no host of the "
                f"cluster (hosts: {', '.join(cluster.names)}); return a host's name or None"
            )
        return host, detail

    @classmethod
    def holding(cls, address: str, among: Sequence[str] | None = None) -> FaultTarget:
        """The host (of ``among``, default all) that holds ``address`` now and answers
        the clients' ARP for it first: the primary of a virtual IP (keepalived's MASTER).

        Holding it is not enough: the system under test could put the address where no
        client reaches it (on ``lo``, or on ``eth0`` answering no ARP) on a host listed
        first, and steer every fault meant for its primary onto that decoy. Of several
        answering, the first reply is the one a client's kernel keeps."""

        def pick(cluster: Cluster) -> str | None:
            hosts = among if among is not None else cluster.names
            for name in arp_answerers(cluster, address):
                if name in hosts and address in host_addresses(cluster, name):
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


ARP_WAIT_S = 0.3
_ETH_P_ARP = 0x0806


def arp_answerers(cluster: Cluster, address: str, wait_s: float = ARP_WAIT_S) -> list[str]:
    """The hosts that answer, within ``wait_s``, an ARP request for ``address`` the client
    namespace broadcasts, in the order their replies came: those the clients can reach
    at it."""
    client = cluster.port("client")
    target = ipaddress.IPv4Address(address).packed
    own = bytes.fromhex(client.mac.replace(":", ""))
    request = (
        b"\xff" * 6 + own + b"\x08\x06"  # ethernet: broadcast, from the client, ARP
        + b"\x00\x01\x08\x00\x06\x04\x00\x01"  # IPv4 over Ethernet, a request
        + own + ipaddress.IPv4Address(client.address).packed + b"\x00" * 6 + target
    )  # fmt: skip
    by_mac = {bytes.fromhex(cluster.port(n).mac.replace(":", "")): n for n in cluster.names}
    found: list[str] = []
    with cluster.client_socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind(("eth0", _ETH_P_ARP))
        s.send(request)
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([s], [], [], left)[0]:
                break
            frame = s.recv(128)
            # an ARP reply (operation 2) whose sender protocol address is ``address``
            if frame[20:22] == b"\x00\x02" and frame[28:32] == target:
                name = by_mac.get(frame[22:28])
                if name is not None and name not in found:
                    found.append(name)
    return found
