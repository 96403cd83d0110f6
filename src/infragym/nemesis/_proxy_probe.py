"""Whether this machine can run the link proxy, checked for real; for ``infragym doctor``."""

from __future__ import annotations

import asyncio

from .._errors import InfraGymError
from ..sandbox import Cluster
from ..sandbox.lowlevel import CLIENT, socket_in_netns
from ._proxy import LinkProxy


def proxy_available(cluster: Cluster) -> tuple[bool, str]:
    """Whether :class:`LinkProxy` works on ``cluster`` (started, with a host), and why not.

    Proxies the client's link to the first host for real: the switch's diversion in the
    machine's namespace (bridge-family nft rewriting a destination MAC), the redirect to a
    listener in the link proxy's namespace, ``SO_ORIGINAL_DST``, and a transparent upstream
    socket whose answers come back to it, so that the host sees the client as its peer.
    """
    host = cluster.hosts[0]

    async def attempt() -> tuple[bool, str]:
        server = socket_in_netns(host.netns)
        server.bind((host.address, 0))
        server.listen(4)
        server.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            async with LinkProxy(cluster, connect_timeout_s=2.0) as proxy:
                link = await proxy.add_link(CLIENT, host.name)
                client = await asyncio.to_thread(cluster.client_socket)
                with client:
                    client.setblocking(False)
                    async with asyncio.timeout(5.0):
                        await loop.sock_connect(client, (host.address, server.getsockname()[1]))
                        accepted, peer = await loop.sock_accept(server)
                        with accepted:
                            await loop.sock_sendall(client, b"ping")
                            got = await loop.sock_recv(accepted, 4)
                if proxy.stats(link).connections != 1:
                    return False, "the switch did not divert the connection to the proxy"
                if peer[0] != cluster.client_address or got != b"ping":
                    return False, f"the proxied connection came from {peer[0]} and carried {got!r}"
        finally:
            server.close()
        return True, (
            "the switch diverts a link to the proxy; nft redirect, SO_ORIGINAL_DST and "
            "transparent upstream sockets work"
        )

    try:
        return asyncio.run(attempt())
    except (OSError, TimeoutError, InfraGymError) as exc:
        return False, f"probe failed: {type(exc).__name__}: {exc}"
