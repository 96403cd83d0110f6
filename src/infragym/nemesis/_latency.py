"""Latency and jitter on the links of a host, through the userspace TCP proxy.

``tc netem`` is missing here, so every TCP connection between a victim host and the other
hosts, in both directions, is relayed by a :class:`LinkProxy` that holds each chunk back
by ``delay_s`` (plus uniform jitter, never reordering). A request/response round trip
across a slowed link takes about ``2 * delay_s`` longer. Healing closes the proxy, which
resets the connections it was relaying; clients reconnect directly.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from .._errors import ConfigError
from ..sandbox import Cluster
from ._faults import Fault
from ._proxy import LinkProxy


class Latency(Fault):
    """Add ``delay_s`` (+- ``jitter_s``) each way on every link between ``hosts`` and the rest."""

    kind = "latency"

    def __init__(
        self,
        hosts: Sequence[str],
        delay_s: float,
        jitter_s: float = 0.0,
        label: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(label)
        if not hosts:
            raise ConfigError("latency needs at least one host")
        if not 0 < delay_s <= 30 or not 0 <= jitter_s <= delay_s:
            raise ConfigError(
                f"latency needs 0 < delay_s <= 30 and 0 <= jitter_s <= delay_s "
                f"(got delay_s={delay_s}, jitter_s={jitter_s})"
            )
        self.hosts = tuple(hosts)
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.seed = seed
        self._proxy: LinkProxy | None = None

    def targets(self) -> tuple[str, ...]:
        return self.hosts

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        raise TypeError("Latency runs on an event loop: use `await fault.apply_async(cluster)`")

    def heal(self, cluster: Cluster) -> None:
        raise TypeError("Latency runs on an event loop: use `await fault.heal_async(cluster)`")

    def _pairs(self, cluster: Cluster) -> list[tuple[str, str]]:
        victims = {cluster.host(h).name for h in self.hosts}
        pairs = set()
        for v in victims:
            for other in cluster.hosts:
                if other.name != v:
                    pairs.add((v, other.name))
                    pairs.add((other.name, v))
        return sorted(pairs)

    async def apply_async(self, cluster: Cluster) -> dict[str, Any]:
        proxy = self._proxy = LinkProxy()
        await proxy.start()
        pairs = self._pairs(cluster)
        for src, dst in pairs:
            seed = zlib.crc32(f"{self.seed}:{self.label}:{src}>{dst}".encode())
            await proxy.add_link(
                cluster.host(src).netns,
                cluster.host(dst).address,
                self.delay_s,
                self.jitter_s,
                seed,
            )
        return {
            "delay_s": self.delay_s,
            "jitter_s": self.jitter_s,
            "links": [f"{a}->{b}" for a, b in pairs],
        }

    async def heal_async(self, cluster: Cluster) -> None:
        if self._proxy is not None:
            proxy, self._proxy = self._proxy, None
            await proxy.close()
