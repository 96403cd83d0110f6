"""Latency and jitter on the links of a host, through the userspace TCP proxy.

``tc netem`` is missing here, so every TCP connection between a victim host and the other
hosts, in both directions, is relayed by a :class:`LinkProxy` that holds each chunk back
by ``delay_s`` (plus uniform jitter, never reordering). The cluster's switch diverts those
links to the proxy from the machine's namespace, so a host cannot escape the delay even
with CAP_NET_ADMIN in its own namespace. A request/response round trip
across a slowed link takes about ``2 * delay_s`` longer. Healing closes the proxy, which
resets the connections it was relaying; clients reconnect directly.

Only host-to-host links are slowed, as in Jepsen's model (latency between nodes): the links
between the victim and the cluster's client namespace, where workloads and graders run,
are left alone by default, so a client talking straight to the victim sees no added
latency and a grader measures the fault through inter-node traffic (replication, quorum
reads, forwarded requests). Pass ``include_client=True`` to slow the client's links to the
victim too, as if the victim were far from its users.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from ..sandbox import Cluster
from ..sandbox.lowlevel import CLIENT
from ._fault import Fault
from ._proxy import LinkProxy


class Latency(Fault):
    """Add ``delay_s`` (+- ``jitter_s``) each way on every link between ``hosts`` and the rest.

    "The rest" is the other hosts of the cluster, not its client namespace: what clients
    see directly is unchanged unless ``include_client`` is set, which also slows the links
    between each victim and the client namespace (both directions).
    """

    kind = "latency"

    def __init__(
        self,
        hosts: Sequence[str],
        delay_s: float,
        jitter_s: float = 0.0,
        label: str | None = None,
        seed: int = 0,
        *,
        include_client: bool = False,
    ) -> None:
        super().__init__(label)
        self.hosts = self._hosts(hosts)
        delay_s = self._number("delay_s", delay_s)
        jitter_s = self._number("jitter_s", jitter_s)
        if not 0 < delay_s <= 30 or not 0 <= jitter_s <= delay_s:
            raise self._bad(
                f"latency needs 0 < delay_s <= 30 and 0 <= jitter_s <= delay_s "
                f"(got delay_s={delay_s}, jitter_s={jitter_s})"
            )
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.seed = seed
        self.include_client = include_client
        self._proxy: LinkProxy | None = None

    def targets(self) -> tuple[str, ...]:
        return self.hosts

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        raise TypeError("Latency runs on an event loop: use `await fault.apply_async(cluster)`")

    def heal(self, cluster: Cluster) -> None:
        raise TypeError("Latency runs on an event loop: use `await fault.heal_async(cluster)`")

    def _links(self, cluster: Cluster) -> list[tuple[str, str]]:
        """(source, destination) endpoint names, sorted."""
        ends = [h.name for h in cluster.hosts] + ([CLIENT] if self.include_client else [])
        victims = {cluster.host(h).name for h in self.hosts}
        pairs = set()
        for v in victims:
            for other in ends:
                if other != v:
                    pairs.add((v, other))
                    pairs.add((other, v))
        return sorted(pairs)

    async def apply_async(self, cluster: Cluster) -> dict[str, Any]:
        links = self._links(cluster)
        proxy = self._proxy = LinkProxy(cluster)
        await proxy.start()
        for src, dst in links:
            seed = zlib.crc32(f"{self.seed}:{self.label}:{src}>{dst}".encode())
            await proxy.add_link(src, dst, self.delay_s, self.jitter_s, seed)
        return {
            "delay_s": self.delay_s,
            "jitter_s": self.jitter_s,
            "include_client": self.include_client,
            "links": [f"{a}->{b}" for a, b in links],
        }

    async def heal_async(self, cluster: Cluster) -> None:
        if self._proxy is not None:
            proxy, self._proxy = self._proxy, None
            await proxy.close()
