"""Latency, jitter, resets and blackholes on a TCP link, by a transparent userspace proxy.

``tc netem`` is missing on these kernels, so a link A -> B is slowed down the way Toxiproxy
does it, except that clients need not know: in A's network namespace an nft nat rule
redirects every new TCP connection from A to B's address (any port) to a listener of this
process living in A's namespace; the proxy reads the original destination with
``SO_ORIGINAL_DST`` and connects there from a socket also made in A's namespace and marked
with ``SO_MARK``, which the rule lets through. One asyncio loop serves every link: a socket
keeps the namespace it was created in, so only socket creation needs a thread that entered
the namespace (:mod:`._netns`).

Modes of a link:

- ``delay``: each chunk read at time t is written at
  ``max(previous delivery, t + max(0, delay + U(-jitter, +jitter)))``, in each direction, so
  a link with delay d adds about 2d to every request/response round trip and never reorders
  bytes. The TCP handshake itself is not delayed: the client connects to the local listener.
- ``reset``: new connections are accepted then reset; existing ones are reset both ways.
- ``blackhole``: nothing is delivered either way and nothing is lost: connections stall (new
  ones are accepted, and connected upstream only later) until the mode changes, as TCP across
  a partition that heals.

Whatever goes wrong upstream (refused, reset, unreachable, ``connect_timeout_s``) reaches the
client as a reset, never a hang. Only TCP is proxied; UDP and ICMP pass untouched.

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
import errno
import ipaddress
import logging
import math
import os
import random
import re
import secrets
import shutil
import socket
import struct
import subprocess
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from .._errors import CapabilityError, ConfigError, InfraGymError, PrivilegeError, ResourceError
from ..sandbox._netns import NetnsExecutor, interface_is_up, netns_path, socket_in_netns

__all__ = [
    "PROXY_MARK",
    "TABLE_PREFIX",
    "LinkHandle",
    "LinkProxy",
    "LinkStats",
    "ProxyMode",
    "proxy_available",
    "socket_in_netns",
]

log = logging.getLogger(__name__)

ProxyMode = Literal["delay", "reset", "blackhole"]
_MODES: tuple[ProxyMode, ...] = ("delay", "reset", "blackhole")

PROXY_MARK = 0x16A70001
"""``SO_MARK`` of the proxy's upstream sockets, which the redirect rules let through."""
TABLE_PREFIX = "infragym_proxy"
"""Every nft table the proxy installs is named ``<prefix>_<hex>`` (one per LinkProxy)."""

_ALLOWED_NET = ipaddress.IPv4Network("198.18.0.0/15")
_SO_ORIGINAL_DST = 80
_IP_BIND_ADDRESS_NO_PORT = 24
_CHUNK = 64 * 1024
_NFT_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LinkHandle:
    """One interposed link: TCP connections opened from ``src_netns`` to ``dst_ip``."""

    id: int
    src_netns: str
    dst_ip: str
    listen_port: int


@dataclass(frozen=True)
class LinkStats:
    """Counters of a link since it was added."""

    connections: int
    active: int
    failed: int
    bytes_to_dst: int
    bytes_from_dst: int


class _Abort(Exception):
    """A connection must end with a reset of both sides."""


@dataclass(eq=False)
class _Link:
    handle: LinkHandle
    delay_s: float
    jitter_s: float
    seed: int
    mode: ProxyMode
    listener: socket.socket
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    accept_task: asyncio.Task[None] | None = None
    conn_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    rule_handle: int | None = None
    removed: bool = False
    connections: int = 0
    failed: int = 0
    bytes_to_dst: int = 0
    bytes_from_dst: int = 0

    def set_mode(self, mode: ProxyMode) -> None:
        self.mode = mode
        if mode == "blackhole":
            self.flowing.clear()
        else:
            self.flowing.set()

    def refusing(self) -> bool:
        return self.mode == "reset"

    def sample(self, rng: random.Random) -> float:
        if self.removed:
            return 0.0
        if self.jitter_s <= 0:
            return self.delay_s
        return max(0.0, self.delay_s + rng.uniform(-self.jitter_s, self.jitter_s))


class _Pipe:
    """One direction of a connection: read now, write at the scheduled time, in order."""

    def __init__(
        self,
        link: _Link,
        src: socket.socket,
        dst: socket.socket,
        rng: random.Random,
        to_dst: bool,
        buffer_bytes: int,
    ) -> None:
        self.link, self.src, self.dst, self.rng, self.to_dst = link, src, dst, rng, to_dst
        self.buffer_bytes = buffer_bytes
        # (delivery time, data); b"" is an EOF to pass on, None a reset
        self.items: deque[tuple[float, bytes | None]] = deque()
        self.buffered = 0
        self.last = 0.0
        self.ready = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()

    def _push(self, data: bytes | None) -> None:
        now = asyncio.get_running_loop().time()
        self.last = max(self.last, now + self.link.sample(self.rng))
        self.items.append((self.last, data))
        if data:
            self.buffered += len(data)
            if self.buffered >= self.buffer_bytes:
                self.space.clear()
        self.ready.set()

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.space.wait()
            try:
                data = await loop.sock_recv(self.src, _CHUNK)
            except OSError:
                self._push(None)
                return
            self._push(data)
            if not data:
                return

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.items:
                self.ready.clear()
                await self.ready.wait()
            wait = self.items[0][0] - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.link.flowing.wait()
            now = loop.time()
            batch: list[bytes] = []
            finished = reset = False
            while self.items and self.items[0][0] <= now:
                data = self.items.popleft()[1]
                if data is None:
                    reset = True
                    break
                if not data:
                    finished = True
                    break
                batch.append(data)
            if batch:
                payload = b"".join(batch)
                try:
                    await loop.sock_sendall(self.dst, payload)
                except OSError as exc:
                    raise _Abort from exc
                if self.to_dst:
                    self.link.bytes_to_dst += len(payload)
                else:
                    self.link.bytes_from_dst += len(payload)
                self.buffered -= len(payload)
                if self.buffered < self.buffer_bytes:
                    self.space.set()
            if reset:
                raise _Abort
            if finished:
                try:
                    self.dst.shutdown(socket.SHUT_WR)
                except OSError as exc:
                    raise _Abort from exc
                return


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _original_dst(sock: socket.socket) -> tuple[str, int]:
    raw = sock.getsockopt(socket.SOL_IP, _SO_ORIGINAL_DST, 16)
    port, addr = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(addr), port


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
        self._links: dict[int, _Link] = {}
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
        link: _Link | None = None
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
            link = _Link(handle, delay_s, jitter_s, seed, mode, listener)
            link.set_mode(mode)
            self._links[handle.id] = link
            link.accept_task = asyncio.create_task(self._accept(link))
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

    def _link(self, handle: LinkHandle, *, removed_ok: bool = False) -> _Link:
        link = self._links.get(handle.id)
        if link is None or link.handle != handle or (link.removed and not removed_ok):
            raise ConfigError(f"unknown or removed link {handle}")
        return link

    async def _drop_link(self, link: _Link, *, close_connections: bool) -> None:
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
                    await self._nft(
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
                    self._spawn(link, client)
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

    async def _install_rule(self, link: _Link) -> None:
        netns = link.handle.src_netns
        script = ""
        if netns not in self._tables:
            script += (
                f"add table ip {self.table}\n"
                f"add chain ip {self.table} out "
                "{ type nat hook output priority -100; policy accept; }\n"
                f"add rule ip {self.table} out ct state new counter "
                'comment "keeps conntrack on for proxied connections"\n'
            )
        script += (
            f"add rule ip {self.table} out meta mark != {self.mark:#x} "
            f"ip daddr {link.handle.dst_ip} meta l4proto tcp "
            f'redirect to :{link.handle.listen_port} comment "link {link.handle.id}"\n'
        )
        self._tables.add(netns)
        out = await self._nft(netns, script, echo=True)
        found = re.search(rf"comment \"link {link.handle.id}\" # handle (\d+)", out)
        if found is None:
            raise ResourceError(f"nft did not report the handle of the rule it added: {out!r}")
        link.rule_handle = int(found.group(1))

    async def _delete_table(self, netns: str) -> None:
        self._tables.discard(netns)
        try:
            await self._nft(netns, f"delete table ip {self.table}\n")
        except ResourceError as exc:
            gone = not os.path.exists(netns_path(netns))
            if not (gone or "No such file or directory" in str(exc)):
                raise

    async def _nft(self, netns: str, script: str, *, echo: bool = False) -> str:
        argv = ["nsenter", f"--net={netns_path(netns)}", "nft"]
        if echo:
            argv += ["--echo", "--handle"]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            "-f",
            "-",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(script.encode()), _NFT_TIMEOUT_S)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise ResourceError(
                f"nft in netns {netns} failed ({proc.returncode}): "
                f"{err.decode(errors='replace').strip()}; script was: {script.strip()!r}"
            )
        return out.decode(errors="replace")

    async def _accept(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(link.listener)
            except OSError as exc:
                log.warning("link proxy %s: accept failed: %s", link.handle, exc)
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    await asyncio.sleep(0.1)
                    continue
                return
            self._spawn(link, client)

    def _spawn(self, link: _Link, client: socket.socket) -> None:
        client.setblocking(False)
        link.connections += 1
        task = asyncio.create_task(self._serve(link, client, link.connections))
        link.conn_tasks.add(task)
        task.add_done_callback(link.conn_tasks.discard)

    async def _serve(self, link: _Link, client: socket.socket, number: int) -> None:
        """Relay one connection; any way it ends badly, both sides get a reset."""
        upstream: socket.socket | None = None
        clean = False
        try:
            upstream = await self._connect_upstream(link, client)
            if upstream is None:
                return
            seed = f"{link.seed}:{number}"
            pipes = (
                _Pipe(link, client, upstream, random.Random(f"{seed}:up"), True, self.buffer_bytes),
                _Pipe(
                    link, upstream, client, random.Random(f"{seed}:down"), False, self.buffer_bytes
                ),
            )
            try:
                async with asyncio.TaskGroup() as group:
                    for pipe in pipes:
                        group.create_task(pipe.read())
                        group.create_task(pipe.write())
                clean = True
            except* _Abort:
                pass
        except Exception:
            log.warning("link proxy %s: connection failed", link.handle, exc_info=True)
        finally:
            for sock in (client, upstream):
                if sock is not None and clean:
                    sock.close()
                elif sock is not None:
                    _reset(sock)

    async def _connect_upstream(self, link: _Link, client: socket.socket) -> socket.socket | None:
        """The upstream socket, connected to where the client meant to go; None to refuse."""
        try:
            dst = _original_dst(client)
            source = client.getpeername()[0]
        except OSError:
            return None
        if dst[0] != link.handle.dst_ip or link.refusing():
            return None
        await link.flowing.wait()
        if link.refusing():
            return None
        upstream = await self._socket_in(link.handle.src_netns)
        try:
            upstream.setblocking(False)
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.mark)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not ipaddress.IPv4Address(source).is_loopback:
                with contextlib.suppress(OSError):
                    upstream.setsockopt(socket.SOL_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
                    upstream.bind((source, 0))
            async with asyncio.timeout(self.connect_timeout_s):
                await asyncio.get_running_loop().sock_connect(upstream, dst)
        except (OSError, TimeoutError):
            link.failed += 1
            _reset(upstream)
            return None
        except BaseException:
            _reset(upstream)
            raise
        return upstream


def proxy_available() -> tuple[bool, str]:
    """Whether this machine can run :class:`LinkProxy`, and why not; for ``infragym doctor``.

    Builds a throwaway namespace and checks, for real, that an nft redirect reaches a local
    listener, that ``SO_ORIGINAL_DST`` gives the intended destination, and that a socket
    carrying the proxy's mark is not redirected.
    """
    if os.geteuid() != 0:
        return False, "needs root (nft rules and setns)"
    missing = [tool for tool in ("ip", "nft", "nsenter") if shutil.which(tool) is None]
    if missing:
        return False, f"missing tools: {', '.join(missing)}"
    name = f"igprobe-{secrets.token_hex(4)}"
    made = False
    socks: list[socket.socket] = []
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
        made = True
        subprocess.run(
            ["ip", "-n", name, "-batch", "-"],
            input=b"link set lo up\naddr add 198.18.255.1/24 dev lo\n",
            check=True,
            capture_output=True,
            timeout=10,
        )
        listener = socket_in_netns(name)
        socks.append(listener)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(2.0)
        port = listener.getsockname()[1]
        rules = (
            f"add table ip {TABLE_PREFIX}_probe\n"
            f"add chain ip {TABLE_PREFIX}_probe out "
            "{ type nat hook output priority -100; policy accept; }\n"
            f"add rule ip {TABLE_PREFIX}_probe out meta mark != {PROXY_MARK:#x} "
            f"ip daddr 198.18.255.2 meta l4proto tcp redirect to :{port}\n"
        )
        done = subprocess.run(
            ["nsenter", f"--net={netns_path(name)}", "nft", "-f", "-"],
            input=rules.encode(),
            check=False,
            capture_output=True,
            timeout=10,
        )
        if done.returncode != 0:
            return False, f"nft nat redirect unavailable: {done.stderr.decode().strip()}"
        client = socket_in_netns(name)
        socks.append(client)
        client.settimeout(2.0)
        client.connect(("198.18.255.2", 9))
        accepted, _ = listener.accept()
        socks.append(accepted)
        dst = _original_dst(accepted)
        if dst != ("198.18.255.2", 9):
            return False, f"SO_ORIGINAL_DST gave {dst}, expected ('198.18.255.2', 9)"
        marked = socket_in_netns(name)
        socks.append(marked)
        marked.settimeout(2.0)
        marked.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, PROXY_MARK)
        try:
            marked.connect(("198.18.255.2", 9))
        except ConnectionRefusedError:
            pass
        else:
            return False, "a socket carrying the proxy mark was redirected too"
        return True, "nft nat redirect, SO_ORIGINAL_DST and SO_MARK work"
    except (OSError, subprocess.SubprocessError, InfraGymError) as exc:
        return False, f"probe failed: {exc}"
    finally:
        for sock in socks:
            sock.close()
        if made:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["ip", "netns", "del", name], check=False, capture_output=True, timeout=10
                )
