"""The relay of the link proxy: accept a redirected connection, connect it upstream, and
carry its bytes both ways with the link's delay, jitter and mode.

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
client as a reset, never a hang. A link that is removed relays on with no added delay.

The upstream socket is transparent (``IP_TRANSPARENT``) and bound to the client's own
address, so the destination sees the connection come from the client, as it would without
the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import random
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from .._errors import InfraGymError

log = logging.getLogger(__name__)

ProxyMode = Literal["delay", "reset", "blackhole"]

_SO_ORIGINAL_DST = 80
_IP_TRANSPARENT = 19
_IP_BIND_ADDRESS_NO_PORT = 24
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class LinkHandle:
    """One interposed link: TCP connections that endpoint ``src`` opens to ``dst``
    (at ``dst_ip``), accepted by the proxy on ``listen_port``."""

    id: int
    src: str
    dst: str
    dst_ip: str
    listen_port: int


@dataclass(frozen=True)
class Upstream:
    """How the relay reaches where a client meant to go."""

    connect_timeout_s: float
    buffer_bytes: int
    """How much a direction of a connection holds back before it stops reading."""
    socket: Callable[[], Awaitable[socket.socket]]
    """A new TCP socket in the proxy's namespace."""


class Abort(InfraGymError):
    """A connection must end with a reset of both sides."""


@dataclass(eq=False)
class Link:
    """A link's settings, listener, connections and counters."""

    handle: LinkHandle
    delay_s: float
    jitter_s: float
    seed: int
    mode: ProxyMode
    listener: socket.socket
    upstream: Upstream
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


class Pipe:
    """One direction of a connection: read now, write at the scheduled time, in order."""

    def __init__(
        self,
        link: Link,
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
                    raise Abort from exc
                if self.to_dst:
                    self.link.bytes_to_dst += len(payload)
                else:
                    self.link.bytes_from_dst += len(payload)
                self.buffered -= len(payload)
                if self.buffered < self.buffer_bytes:
                    self.space.set()
            if reset:
                raise Abort
            if finished:
                try:
                    self.dst.shutdown(socket.SHUT_WR)
                except OSError as exc:
                    raise Abort from exc
                return


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset rather than a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def original_dst(sock: socket.socket) -> tuple[str, int]:
    """Where a connection redirected by nft was going (``SO_ORIGINAL_DST``)."""
    raw = sock.getsockopt(socket.SOL_IP, _SO_ORIGINAL_DST, 16)
    port, addr = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(addr), port


async def accept(link: Link) -> None:
    """Serve every connection the link's listener accepts, until cancelled."""
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
        spawn(link, client)


def spawn(link: Link, client: socket.socket) -> None:
    """Serve ``client`` in a task of ``link``."""
    client.setblocking(False)
    link.connections += 1
    task = asyncio.create_task(_serve(link, client, link.connections))
    link.conn_tasks.add(task)
    task.add_done_callback(link.conn_tasks.discard)


async def _serve(link: Link, client: socket.socket, number: int) -> None:
    """Relay one connection; any way it ends badly, both sides get a reset."""
    upstream: socket.socket | None = None
    clean = False
    try:
        upstream = await _connect_upstream(link, client)
        if upstream is None:
            return
        seed = f"{link.seed}:{number}"
        buffer_bytes = link.upstream.buffer_bytes
        pipes = (
            Pipe(link, client, upstream, random.Random(f"{seed}:up"), True, buffer_bytes),
            Pipe(link, upstream, client, random.Random(f"{seed}:down"), False, buffer_bytes),
        )
        try:
            async with asyncio.TaskGroup() as group:
                for pipe in pipes:
                    group.create_task(pipe.read())
                    group.create_task(pipe.write())
            clean = True
        except* Abort:
            pass
    except Exception:
        log.warning("link proxy %s: connection failed", link.handle, exc_info=True)
    finally:
        for sock in (client, upstream):
            if sock is not None and clean:
                sock.close()
            elif sock is not None:
                reset(sock)


async def _connect_upstream(link: Link, client: socket.socket) -> socket.socket | None:
    """The upstream socket, connected to where the client meant to go; None to refuse."""
    try:
        dst = original_dst(client)
        source = client.getpeername()[0]
    except OSError:
        return None
    if dst[0] != link.handle.dst_ip or link.refusing():
        return None
    await link.flowing.wait()
    if link.refusing():
        return None
    settings = link.upstream
    upstream = await settings.socket()
    try:
        upstream.setblocking(False)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not ipaddress.IPv4Address(source).is_loopback:
            upstream.setsockopt(socket.SOL_IP, _IP_TRANSPARENT, 1)
            upstream.setsockopt(socket.SOL_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            upstream.bind((source, 0))
        async with asyncio.timeout(settings.connect_timeout_s):
            await asyncio.get_running_loop().sock_connect(upstream, dst)
    except (OSError, TimeoutError):
        link.failed += 1
        reset(upstream)
        return None
    except BaseException:
        reset(upstream)
        raise
    return upstream
