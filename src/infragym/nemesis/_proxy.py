"""Latency, jitter, resets and blackholes on TCP links between a cluster's endpoints, by a
transparent userspace proxy that neither end can bypass.

``tc netem`` is missing on these kernels, so a link A -> B is slowed down the way Toxiproxy
does it, except that neither end needs to know and neither can undo it (a host may hold
CAP_NET_ADMIN in its own namespace). The cluster's switch, in the machine's namespace,
rewrites the destination MAC of A's TCP frames for B's address so that they reach the link
proxy's namespace (``Cluster.link_proxy()``); there an nft nat rule redirects each new
connection (a SYN from A's MAC to B's address) to a listener of this process. The proxy
reads the original destination with ``SO_ORIGINAL_DST`` and connects there from a
transparent socket bound to A's address, so B sees A as its peer, as it would directly.
B's answers to that socket carry a source port of the proxy namespace's range
(``LINK_PROXY_PORTS``, above the hosts' ephemeral ports), which the switch diverts to the
proxy too, and a ``socket`` rule there delivers them locally. Whatever else is diverted
(connections opened before the link, or after :meth:`LinkProxy.remove_link`) the proxy's
namespace routes on to B unchanged. One asyncio loop serves every link: a socket keeps the
namespace it was created in, so only socket creation needs a thread that entered the
proxy's namespace (:mod:`._netns`).

This module holds :class:`LinkProxy`, which adds and removes links (listeners and rules);
:mod:`._relay` carries each connection and describes the modes of a link (``delay``,
``reset``, ``blackhole``); :mod:`._proxy_probe` checks that a machine can run the proxy.
Only TCP is proxied; UDP and ICMP pass untouched.

Only connections A opens to B take the link; B -> A needs a link of its own. Connections
that existed before :meth:`LinkProxy.add_link` are not affected. :meth:`LinkProxy.remove_link`
(a heal) removes the redirect and the listener; connections already proxied are kept and
relayed with no added delay until they end or :meth:`LinkProxy.close` resets them, because a
heal should not break connections: the switch keeps diverting the link to the proxy until
:meth:`LinkProxy.close`. Close the proxy before tearing the cluster down.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import re
import secrets
import shutil
import socket
from dataclasses import dataclass

from .._errors import CapabilityError, ConfigError, InfraGymError, PrivilegeError, ResourceError
from ..sandbox import Cluster
from ..sandbox.lowlevel import LINK_PROXY, NetnsExecutor, Port, netns_path, socket_in_netns
from ._proxy_nft import DIVERT_PRIORITY, diversion_rules, nft_in, proxy_table, redirect_rule
from ._relay import Link, LinkHandle, ProxyMode, Upstream, accept, spawn

__all__ = [
    "TABLE_PREFIX",
    "LinkHandle",
    "LinkProxy",
    "LinkStats",
    "ProxyMode",
    "socket_in_netns",
]

_MODES: tuple[ProxyMode, ...] = ("delay", "reset", "blackhole")

TABLE_PREFIX = "infragym_proxy"
"""The nft table of a LinkProxy in the link proxy's namespace is ``<prefix>_<hex>``; its
table on the switch, ``infragym_<run id>_link_proxy_<hex>``."""

_ALLOWED_NET = ipaddress.IPv4Network("198.18.0.0/15")
_CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LinkStats:
    """Counters of a link since it was added."""

    connections: int
    active: int
    failed: int
    bytes_to_dst: int
    bytes_from_dst: int


def _check_ip(dst_ip: str) -> str:
    try:
        addr = ipaddress.IPv4Address(dst_ip)
    except ValueError:
        raise ConfigError(f"dst_ip {dst_ip!r} is not an IPv4 address") from None
    if addr not in _ALLOWED_NET:
        raise ConfigError(
            f"dst_ip {dst_ip} is outside {_ALLOWED_NET}, the only range infragym targets"
        )
    return str(addr)


def _check_delay(delay_s: float, jitter_s: float) -> None:
    for name, value in (("delay_s", delay_s), ("jitter_s", jitter_s)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_mode(mode: str) -> ProxyMode:
    for known in _MODES:
        if mode == known:
            return known
    raise ConfigError(f"unknown proxy mode {mode!r}; use one of {', '.join(_MODES)}")


class LinkProxy:
    """Interposes on TCP links between the endpoints of ``cluster`` (its hosts and its
    client namespace) to add delay, jitter, resets and blackholes.

    All methods must be called from the event loop that called :meth:`start`. Use as
    ``async with LinkProxy(cluster) as proxy:`` or call :meth:`close`, which is idempotent
    and undoes whatever was installed, also after a failure halfway through.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        connect_timeout_s: float = 10.0,
        buffer_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.cluster = cluster
        self.connect_timeout_s = connect_timeout_s
        self.buffer_bytes = buffer_bytes
        token = secrets.token_hex(4)
        self.table = f"{TABLE_PREFIX}_{token}"
        self.switch_table = f"link_proxy_{token}"
        self._links: dict[int, Link] = {}
        self._diverted: set[tuple[str, str]] = set()
        self._port: Port | None = None
        self._executor: NetnsExecutor | None = None
        self._next_id = 1
        self._started = False
        self._closed = False

    async def __aenter__(self) -> LinkProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def netns(self) -> str:
        """The link proxy's namespace, where its listeners and upstream sockets live."""
        return self.cluster.port(LINK_PROXY).netns

    async def start(self) -> None:
        """Check the machine can proxy (root, nft), build the cluster's link proxy
        namespace if need be, and install this proxy's (empty) tables. Idempotent."""
        if self._closed:
            raise InfraGymError("this LinkProxy is closed; make a new one")
        if self._started:
            return
        if os.geteuid() != 0:
            raise PrivilegeError("the link proxy needs root (nft rules, setns); run as root")
        missing = [tool for tool in ("nft", "nsenter") if shutil.which(tool) is None]
        if missing:
            raise CapabilityError(f"the link proxy needs {' and '.join(missing)}; install them")
        self._started = True
        try:
            port = self._port = await asyncio.to_thread(self.cluster.link_proxy)
            self._executor = NetnsExecutor(port.netns)
            await nft_in(port.netns, proxy_table(self.table))
            table = self.cluster.switch.table(self.switch_table)
            await nft_in(
                None,
                f"add table bridge {table}\nadd chain bridge {table} divert "
                f"{{ type filter hook prerouting priority {DIVERT_PRIORITY}; policy accept; }}\n",
            )
        except BaseException:
            with contextlib.suppress(InfraGymError):
                await self.close()
            raise

    async def add_link(
        self,
        src: str,
        dst: str,
        delay_s: float = 0.0,
        jitter_s: float = 0.0,
        seed: int = 0,
        *,
        mode: ProxyMode = "delay",
    ) -> LinkHandle:
        """Send every new TCP connection endpoint ``src`` opens to ``dst`` through the proxy
        (endpoints: host names and ``"client"``).

        Jitter of the n-th connection is drawn from ``Random(f"{seed}:{n}:up|down")``.
        """
        await self.start()
        src_port, dst_port = self.cluster.port(src), self.cluster.port(dst)
        if src == dst or LINK_PROXY in (src, dst):
            raise ConfigError(f"cannot proxy {src} -> {dst}: give two endpoints of the cluster")
        dst_ip = _check_ip(dst_port.address)
        _check_delay(delay_s, jitter_s)
        mode = _check_mode(mode)
        for other in self._links.values():
            if not other.removed and (other.handle.src, other.handle.dst) == (src, dst):
                raise ConfigError(f"link {src} -> {dst} is already proxied; use update() on it")
        assert self._executor is not None and self._port is not None
        listener: socket.socket | None = None
        link: Link | None = None
        try:
            listener = await self._executor.socket()
            listener.bind((self._port.address, 0))
            listener.listen(1024)
            listener.setblocking(False)
            handle = LinkHandle(self._next_id, src, dst, dst_ip, listener.getsockname()[1])
            self._next_id += 1
            upstream = Upstream(self.connect_timeout_s, self.buffer_bytes, self._executor.socket)
            link = Link(handle, delay_s, jitter_s, seed, mode, listener, upstream)
            link.set_mode(mode)
            self._links[handle.id] = link
            link.accept_task = asyncio.create_task(accept(link))
            await self._install_rule(link, src_port)
            await self._divert(src_port, dst_port)
        except BaseException:
            with contextlib.suppress(InfraGymError):
                if link is not None:
                    await self._drop_link(link, close_connections=True)
                    del self._links[link.handle.id]
                elif listener is not None:
                    listener.close()
            raise
        return link.handle

    async def update(
        self,
        handle: LinkHandle,
        delay_s: float | None = None,
        jitter_s: float | None = None,
        *,
        mode: ProxyMode | None = None,
    ) -> None:
        """Change a link; ``None`` keeps a setting. New data takes the new delay, in order."""
        link = self._link(handle)
        new_delay = link.delay_s if delay_s is None else delay_s
        new_jitter = link.jitter_s if jitter_s is None else jitter_s
        _check_delay(new_delay, new_jitter)
        link.delay_s, link.jitter_s = new_delay, new_jitter
        if mode is not None:
            link.set_mode(_check_mode(mode))
            if link.mode == "reset":
                for task in list(link.conn_tasks):
                    task.cancel()

    async def remove_link(self, handle: LinkHandle, *, close_connections: bool = False) -> None:
        """Stop interposing: remove the redirect and the listener.

        Connections already proxied keep flowing with no added delay, unless
        ``close_connections``, which resets them.
        """
        await self._drop_link(self._link(handle), close_connections=close_connections)

    def stats(self, handle: LinkHandle) -> LinkStats:
        """Counters of a link (also after :meth:`remove_link`, until :meth:`close`)."""
        link = self._link(handle, removed_ok=True)
        return LinkStats(
            link.connections,
            len(link.conn_tasks),
            link.failed,
            link.bytes_to_dst,
            link.bytes_from_dst,
        )

    @property
    def links(self) -> list[LinkHandle]:
        """The links currently interposed."""
        return [link.handle for link in self._links.values() if not link.removed]

    async def close(self) -> None:
        """Reset every proxied connection and remove every rule, listener and table."""
        self._closed = True
        errors: list[str] = []
        for link in list(self._links.values()):
            try:
                await self._drop_link(link, close_connections=True)
            except InfraGymError as exc:
                errors.append(str(exc))
        tasks = [t for link in self._links.values() for t in link.conn_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT_S)
        self._links.clear()
        tables: list[tuple[str | None, str]] = []
        if self._started:
            self._started = False
            tables.append((None, f"bridge {self.cluster.switch.table(self.switch_table)}"))
        if self._port is not None:
            tables.append((self._port.netns, f"ip {self.table}"))
        for netns, table in tables:
            try:
                await _delete_table(netns, table)
            except InfraGymError as exc:
                errors.append(str(exc))
        self._diverted.clear()
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        if errors:
            raise ResourceError("closing the link proxy: " + "; ".join(errors))

    def _link(self, handle: LinkHandle, *, removed_ok: bool = False) -> Link:
        link = self._links.get(handle.id)
        if link is None or link.handle != handle or (link.removed and not removed_ok):
            raise ConfigError(f"unknown or removed link {handle}")
        return link

    async def _drop_link(self, link: Link, *, close_connections: bool) -> None:
        """Rule first, then listener: a connection redirected meanwhile is still served.
        The diversion on the switch stays until :meth:`close`, so proxied connections
        keep their path."""
        if not link.removed:
            link.removed = True
            link.set_mode("delay")
            try:
                if link.rule_handle is not None:
                    await nft_in(
                        self.netns,
                        f"delete rule ip {self.table} listeners handle {link.rule_handle}\n",
                    )
                    link.rule_handle = None
            finally:
                if link.accept_task is not None:
                    link.accept_task.cancel()
                    await asyncio.wait([link.accept_task])
                while True:
                    try:
                        client, _ = link.listener.accept()
                    except OSError:
                        break
                    spawn(link, client)
                link.listener.close()
        if close_connections:
            for task in list(link.conn_tasks):
                task.cancel()
            if link.conn_tasks:
                await asyncio.wait(list(link.conn_tasks), timeout=_CLOSE_TIMEOUT_S)

    async def _install_rule(self, link: Link, src: Port) -> None:
        script = (
            redirect_rule(self.table, src, link.handle.dst_ip, link.handle.listen_port)
            + f' comment "link {link.handle.id}"\n'
        )
        out = await nft_in(self.netns, script, echo=True)
        found = re.search(rf"comment \"link {link.handle.id}\" # handle (\d+)", out)
        if found is None:
            raise ResourceError(f"nft did not report the handle of the rule it added: {out!r}")
        link.rule_handle = int(found.group(1))

    async def _divert(self, src: Port, dst: Port) -> None:
        """Have the switch send ``src``'s TCP for ``dst`` here (once per pair: the
        diversion outlives a removed link, for the connections it still relays)."""
        if (src.name, dst.name) in self._diverted:
            return
        assert self._port is not None
        table = self.cluster.switch.table(self.switch_table)
        rules = diversion_rules(src, dst, self._port)
        await nft_in(None, "".join(f"add rule bridge {table} divert {r}\n" for r in rules))
        self._diverted.add((src.name, dst.name))


async def _delete_table(netns: str | None, table: str) -> None:
    try:
        await nft_in(netns, f"delete table {table}\n")
    except ResourceError as exc:
        gone = netns is not None and not os.path.exists(netns_path(netns))
        if not (gone or "No such file or directory" in str(exc)):
            raise
