"""A client on a cluster's bridge that sends each request from a freshly drawn address.

Everything here is blocking and runs in a thread that entered the endpoint's network
namespace (:meth:`Peer.run`), so sockets are plain ``socket.socket`` objects there; each
connection is bound to the address :meth:`Peer.fresh` drew last. The same class serves the
legitimate clients of a functional gate and the attacker of an attack suite: both draw from
one range (:meth:`infragym.sandbox.Cluster.draw_address`), so a service cannot tell them
apart by address.
"""

from __future__ import annotations

import errno
import random
import selectors
import socket
import ssl
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..sandbox import Cluster
from ..sandbox.lowlevel import run_in_netns

T = TypeVar("T")
MAX_BODY = 1 << 20  # what a response keeps of its body
CONNECT_S = 2.0
READ_S = 4.0


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status (0 when the connection ended without one), lower-cased
    headers, body (at most :data:`MAX_BODY` bytes)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Peer:
    """One endpoint of ``cluster`` (``"client"`` or one :meth:`Cluster.endpoint` built)
    whose connections come from addresses drawn by ``rng`` from ``pool``."""

    cluster: Cluster
    endpoint: str
    rng: random.Random
    pool: Sequence[str] | None = None
    sources: list[str] = field(default_factory=list)

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a thread inside the endpoint's namespace (blocking)."""
        return run_in_netns(self.cluster.port(self.endpoint).netns, fn)

    def fresh(self) -> str:
        """Draw a new address for the next connections; recorded in :attr:`sources`."""
        address = self.cluster.draw_address(self.endpoint, self.rng, self.pool)
        self.sources.append(address)
        return address

    @property
    def source(self) -> str:
        return self.sources[-1] if self.sources else self.fresh()

    def connect(self, address: str, port: int, timeout: float = CONNECT_S) -> socket.socket:
        """A TCP connection from the current source address (call inside :meth:`run`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.source, 0))
            sock.settimeout(timeout)
            sock.connect((address, port))
            sock.settimeout(READ_S)
            return sock
        except BaseException:
            sock.close()
            raise

    def tls(
        self,
        address: str,
        port: int,
        context: ssl.SSLContext,
        server_hostname: str | None = None,
    ) -> ssl.SSLSocket:
        """A TLS connection (the handshake done) with ``context``; raises ``ssl.SSLError``
        or ``OSError`` when the server refuses it."""
        sock = self.connect(address, port)
        try:
            return context.wrap_socket(sock, server_hostname=server_hostname)
        except BaseException:
            sock.close()
            raise

    def http(
        self,
        address: str,
        port: int,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        context: ssl.SSLContext | None = None,
        host_header: str | None = None,
    ) -> Response:
        """One HTTP/1.1 request on a new connection (TLS with ``context``). ``path`` is
        sent as is (no normalisation: traversal probes need ``..`` and ``%2f`` kept)."""
        sock: socket.socket = (
            self.tls(address, port, context, host_header)
            if context
            else self.connect(address, port)
        )
        with sock:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header or address}"]
            hdrs = {"Connection": "close", "User-Agent": "infragym-attack/1"}
            if body or method in ("POST", "PUT"):
                hdrs["Content-Length"] = str(len(body))
            hdrs.update(headers or {})
            lines += [f"{k}: {v}" for k, v in hdrs.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            return read_response(sock)

    def redis(self, address: str, port: int, *commands: Sequence[str]) -> list[bytes]:
        """Send redis commands (RESP) on one connection; each reply's first line."""
        with self.connect(address, port) as sock:
            replies = []
            reader = sock.makefile("rb")
            for cmd in commands:
                wire = f"*{len(cmd)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in cmd)
                sock.sendall(wire.encode())
                replies.append(read_resp(reader))
            return replies

    def scan(self, address: str, ports: Iterable[int], timeout: float = 1.0) -> list[int]:
        """The TCP ports of ``ports`` that accept a connection (call inside :meth:`run`):
        non-blocking connects, a few hundred at a time."""
        todo = list(ports)
        found: list[int] = []
        source = self.source
        while todo:
            batch, todo = todo[:400], todo[400:]
            sel = selectors.DefaultSelector()
            socks = []
            try:
                for port in batch:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    s.setblocking(False)
                    s.bind((source, 0))
                    rc = s.connect_ex((address, port))
                    if rc in (0, errno.EINPROGRESS):
                        sel.register(s, selectors.EVENT_WRITE, port)
                pending = len(sel.get_map())
                while pending:
                    events = sel.select(timeout)
                    if not events:
                        break
                    for key, _ in events:
                        conn = key.fileobj
                        assert isinstance(conn, socket.socket)
                        if conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                            found.append(int(key.data))
                        sel.unregister(conn)
                        pending -= 1
            finally:
                sel.close()
                for s in socks:
                    s.close()
        return sorted(found)


def read_response(sock: socket.socket) -> Response:
    """Read an HTTP response until the server closes (or :data:`MAX_BODY`)."""
    data = b""
    try:
        while len(data) < MAX_BODY + 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return Response(0, {}, data[:MAX_BODY])
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return Response(int(parts[1]), headers, body[:MAX_BODY])


def dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return out + size_line + sep + rest
        if size == 0 or not sep:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def read_resp(reader: object) -> bytes:
    """A redis reply's first line (``+PONG``, ``-NOAUTH ...``, ``$5`` then its payload)."""
    line: bytes = reader.readline()  # type: ignore[attr-defined]
    if line.startswith(b"$") and line[1:].strip().lstrip(b"-").isdigit():
        n = int(line[1:])
        if n >= 0:
            payload: bytes = reader.read(n + 2)  # type: ignore[attr-defined]
            return line.strip() + b" " + payload[:n]
    if line.startswith(b"*") and line[1:].strip().isdigit():
        items = [read_resp(reader) for _ in range(int(line[1:]))]
        return line.strip() + b" " + b" ".join(items)
    return line.strip()


def tls_context(
    *,
    cafile: str | None = None,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A client context: verifying against ``cafile`` (else no verification, as an
    attacker does), limited to the given versions and (TLS 1.2 and below) ciphers.
    Old versions and weak ciphers need OpenSSL's security level 0 on the client's side."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile)
    with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated: what a probe offers
        warnings.simplefilter("ignore", DeprecationWarning)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx
