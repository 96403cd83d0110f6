"""Latency, jitter, resets and blackholes on a TCP link, by a transparent userspace proxy.

``tc netem`` is missing on these kernels, so a link A -> B is slowed down the way Toxiproxy
does it, except that clients need not know: in A's network namespace an nft nat rule
redirects every new TCP connection from A to B's address (any port) to a listener of this
process living in A's namespace; the proxy reads the original destination with
``SO_ORIGINAL_DST`` and connects there from a socket also made in A's namespace and marked
with ``SO_MARK``, which the rule lets through. One asyncio loop serves every link: a socket
keeps the namespace it was created in, so only socket creation needs a thread that entered
the namespace (:mod:`._netns`).

This module holds :class:`LinkProxy`, which adds and removes links (listeners and nft
rules); :mod:`._relay` carries each connection and describes the modes of a link (``delay``,
``reset``, ``blackhole``); :mod:`._proxy_probe` checks that a machine can run the proxy.
Only TCP is proxied; UDP and ICMP pass untouched.

Only connections A opens to B take the link; B -> A needs a link in B's namespace. Connections
that existed before :meth:`LinkProxy.add_link` are not affected. :meth:`LinkProxy.remove_link`
(a heal) removes the rule and the listener; connections already proxied are kept and relayed
with no added delay until they end or :meth:`LinkProxy.close` resets them, because a heal
should not break connections. Sockets of the proxy keep their namespace alive, so close the
proxy before tearing a cluster down.
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
from ..sandbox.lowlevel import NetnsExecutor, interface_is_up, netns_path, socket_in_netns
from ._proxy_nft import nat_table, nft_in, redirect_rule
from ._relay import Link, LinkHandle, ProxyMode, Upstream, accept, spawn

__all__ = [
    "PROXY_MARK",
    "TABLE_PREFIX",
    "LinkHandle",
    "LinkProxy",
    "LinkStats",
    "ProxyMode",
    "socket_in_netns",
]

_MODES: tuple[ProxyMode, ...] = ("delay", "reset", "blackhole")

PROXY_MARK = 0x16A70001
"""``SO_MARK`` of the proxy's upstream sockets, which the redirect rules let through."""
TABLE_PREFIX = "infragym_proxy"
"""Every nft table the proxy installs is named ``<prefix>_<hex>`` (one per LinkProxy)."""

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
    """Interposes on TCP links between namespaces to add delay, jitter, resets, blackholes.

    All methods must be called from the event loop that called :meth:`start`. Use as
    ``async with LinkProxy() as proxy:`` or call :meth:`close`, which is idempotent and undoes
    whatever was installed, also after a failure halfway through.
    """

    def __init__(
        self,
        *,
        mark: int = PROXY_MARK,
        connect_timeout_s: float = 10.0,
        buffer_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.mark = mark
        self.connect_timeout_s = connect_timeout_s
        self.buffer_bytes = buffer_bytes
        self.table = f"{TABLE_PREFIX}_{secrets.token_hex(4)}"
        self._links: dict[int, Link] = {}
        self._tables: set[str] = set()
        self._executors: dict[str, NetnsExecutor] = {}
        self._next_id = 1
        self._started = False
        self._closed = False

    async def __aenter__(self) -> LinkProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Check the machine can proxy (root, nft, nsenter). Idempotent."""
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

    async def add_link(
        self,
        src_netns: str,
        dst_ip: str,
        delay_s: float = 0.0,
        jitter_s: float = 0.0,
        seed: int = 0,
        *,
        mode: ProxyMode = "delay",
    ) -> LinkHandle:
        """Send every new TCP connection from ``src_netns`` to ``dst_ip`` through the proxy.

        The listener takes an ephemeral port on 127.0.0.1 in ``src_netns`` (loopback must be
        up). Jitter of the n-th connection is drawn from ``Random(f"{seed}:{n}:up|down")``.
        """
        await self.start()
        dst_ip = _check_ip(dst_ip)
        _check_delay(delay_s, jitter_s)
        mode = _check_mode(mode)
        netns_path(src_netns)
        for other in self._links.values():
            if not other.removed and (other.handle.src_netns, other.handle.dst_ip) == (
                src_netns,
                dst_ip,
            ):
                raise ConfigError(
                    f"link {src_netns} -> {dst_ip} is already proxied; use update() on it"
                )
        executor = self._executors.get(src_netns)
        if executor is None:
            executor = self._executors[src_netns] = NetnsExecutor(src_netns)
        listener: socket.socket | None = None
        link: Link | None = None
        try:
            listener = await executor.socket()
            if not interface_is_up(listener, "lo"):
                raise ResourceError(
                    f"loopback is down in netns {src_netns}; the proxy listens on it: "
                    f"ip -n {src_netns} link set lo up"
                )
            listener.bind(("127.0.0.1", 0))
            listener.listen(1024)
            listener.setblocking(False)
            handle = LinkHandle(self._next_id, src_netns, dst_ip, listener.getsockname()[1])
            self._next_id += 1
            upstream = Upstream(
                self.mark, self.connect_timeout_s, self.buffer_bytes, self._socket_in
            )
            link = Link(handle, delay_s, jitter_s, seed, mode, listener, upstream)
            link.set_mode(mode)
            self._links[handle.id] = link
            link.accept_task = asyncio.create_task(accept(link))
            await self._install_rule(link)
        except BaseException:
            with contextlib.suppress(InfraGymError):
                if link is not None:
                    await self._drop_link(link, close_connections=True)
                    del self._links[link.handle.id]
                else:
                    if listener is not None:
                        listener.close()
                    self._release_netns(src_netns)
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
        """Stop interposing: remove the rule and the listener.

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
        for netns in list(self._tables):
            try:
                await self._delete_table(netns)
            except InfraGymError as exc:
                errors.append(str(exc))
        for executor in self._executors.values():
            executor.shutdown()
        self._executors.clear()
        if errors:
            raise ResourceError("closing the link proxy: " + "; ".join(errors))

    def _link(self, handle: LinkHandle, *, removed_ok: bool = False) -> Link:
        link = self._links.get(handle.id)
        if link is None or link.handle != handle or (link.removed and not removed_ok):
            raise ConfigError(f"unknown or removed link {handle}")
        return link

    async def _drop_link(self, link: Link, *, close_connections: bool) -> None:
        """Rule first, then listener: a connection redirected meanwhile is still served.

        The table stays until :meth:`close`, with a ``ct`` rule that keeps the namespace's
        conntrack hooks registered: when the last rule using conntrack goes, the kernel stops
        tracking, the NAT of live proxied connections is no longer undone and their next
        packets are answered with resets, breaking the connections a heal promises to keep.
        """
        netns = link.handle.src_netns
        if not link.removed:
            link.removed = True
            link.set_mode("delay")
            try:
                if link.rule_handle is not None:
                    await nft_in(
                        netns, f"delete rule ip {self.table} out handle {link.rule_handle}\n"
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
                self._release_netns(netns)
        if close_connections:
            for task in list(link.conn_tasks):
                task.cancel()
            if link.conn_tasks:
                await asyncio.wait(list(link.conn_tasks), timeout=_CLOSE_TIMEOUT_S)

    def _release_netns(self, netns: str) -> None:
        """Let the namespace's thread go once no link needs it; it pins the namespace."""
        if any(
            not link.removed and link.handle.src_netns == netns for link in self._links.values()
        ):
            return
        executor = self._executors.pop(netns, None)
        if executor is not None:
            executor.shutdown()

    async def _socket_in(self, netns: str) -> socket.socket:
        executor = self._executors.get(netns)
        if executor is not None:
            return await executor.socket()
        return await asyncio.to_thread(socket_in_netns, netns)

    async def _install_rule(self, link: Link) -> None:
        netns = link.handle.src_netns
        script = ""
        if netns not in self._tables:
            script += nat_table(self.table) + (
                f"add rule ip {self.table} out ct state new counter "
                'comment "keeps conntrack on for proxied connections"\n'
            )
        script += (
            redirect_rule(self.table, self.mark, link.handle.dst_ip, link.handle.listen_port)
            + f' comment "link {link.handle.id}"\n'
        )
        self._tables.add(netns)
        out = await nft_in(netns, script, echo=True)
        found = re.search(rf"comment \"link {link.handle.id}\" # handle (\d+)", out)
        if found is None:
            raise ResourceError(f"nft did not report the handle of the rule it added: {out!r}")
        link.rule_handle = int(found.group(1))

    async def _delete_table(self, netns: str) -> None:
        self._tables.discard(netns)
        try:
            await nft_in(netns, f"delete table ip {self.table}\n")
        except ResourceError as exc:
            gone = not os.path.exists(netns_path(netns))
            if not (gone or "No such file or directory" in str(exc)):
                raise
