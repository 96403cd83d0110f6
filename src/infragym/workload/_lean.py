"""A lean HTTP/1.1 client on asyncio protocols, for rates aiohttp cannot keep on one core.

aiohttp spends most of an operation's CPU in generic machinery (request objects, header
multidicts, tracing, the stream reader); on one contended core that caps the sustained
open-loop rate near the platform's target. This client does only what the workload needs:
one request per operation on a keep-alive connection, never pipelined or retried, with the
response framed by RFC 9112 section 6.3 (no body for HEAD, 1xx, 204, 304; chunked;
Content-Length; else until the server closes), never reading a body past ``MAX_BODY_BYTES``
(``BodyTooLarge``). Errors are raised as ``RequestNotSent``
(surely nothing reached the server) or ``ResponseBroken`` (it may have), which
``_outcome`` maps to ``fail`` and ``info``.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from ._outcome import MAX_BODY_BYTES, BodyTooLarge, RequestNotSent, ResponseBroken
from ._spec import HttpCall

MAX_HEAD = 64 * 1024
MAX_BODY = MAX_BODY_BYTES
_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)
_SIZE_LINE, _TRAILER = -1, -2  # chunked sub-states, kept in ``_need``


class _Conn(asyncio.Protocol):
    """One keep-alive connection; parses the response to the request it last sent."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.reusable = True
        self._method = ""
        self._phase = _HEAD
        self._status = 0
        self._need = 0
        self._body = bytearray()
        self._got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        w = self.waiter
        if w is None or w.done():
            return
        if self._phase == _UNTIL_CLOSE and exc is None:
            self._finish(bytes(self._body) + bytes(self.buf))
        elif exc is not None:
            w.set_exception(ResponseBroken(f"connection error: {type(exc).__name__}: {exc}"))
        elif self._got_bytes:
            w.set_exception(ResponseBroken("truncated response: connection closed mid-response"))
        else:
            w.set_exception(ResponseBroken("server disconnected before a complete response"))

    def eof_received(self) -> bool:
        return False  # close; connection_lost completes a read-until-close body

    def send(self, data: bytes, method: str) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.waiter, self._method, self._phase = fut, method, _HEAD
        self._body.clear()
        self._got_bytes = False
        self.transport.write(data)
        return fut

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            # bytes nobody asked for: this connection is out of step; keep none of them
            self.reusable = False
            self.buf.clear()
            if self.transport is not None:
                self.transport.close()
            return
        self.buf += data
        self._got_bytes = True
        try:
            self._parse()
        except ResponseBroken as exc:
            self.reusable = False
            if not self.waiter.done():
                self.waiter.set_exception(exc)
            if self.transport is not None:
                self.transport.close()

    def _finish(self, body: bytes) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_result((self._status, body))

    def _parse(self) -> None:
        while self.waiter is not None:
            if self._phase == _HEAD:
                if not self._parse_head():
                    return
            elif self._phase == _LENGTH:
                if len(self.buf) < self._need:
                    return
                body = bytes(self.buf[: self._need])
                del self.buf[: self._need]
                self._finish(body)
            elif self._phase == _CHUNKED:
                if not self._parse_chunk():
                    return
            else:
                if len(self.buf) + len(self._body) > MAX_BODY:
                    raise BodyTooLarge(MAX_BODY)
                return

    def _parse_head(self) -> bool:
        end, after = _blank_line(self.buf)
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                raise ResponseBroken("malformed response: header section too large")
            return False
        lines = [line.rstrip(b"\r") for line in bytes(self.buf[:end]).split(b"\n")]
        del self.buf[:after]
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ResponseBroken(f"malformed response: status line {lines[0][:80]!r}")
        status = int(code)
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise ResponseBroken(f"malformed response: header line {line[:80]!r}")
            name = name.lower()
            value = value.strip()
            if name in headers and name == b"content-length" and headers[name] != value:
                raise ResponseBroken("malformed response: conflicting Content-Length")
            headers[name] = headers[name] + b", " + value if name in headers else value
        if 100 <= status < 200:
            if status == 101:
                raise ResponseBroken("malformed response: unexpected 101 Switching Protocols")
            return True  # interim response; the final one follows
        self._status = status
        conn = {t.strip() for t in headers.get(b"connection", b"").lower().split(b",")}
        if version == b"HTTP/1.0":
            self.reusable = self.reusable and b"keep-alive" in conn
        elif b"close" in conn:
            self.reusable = False
        te = headers.get(b"transfer-encoding")
        if self._method == "HEAD" or status in (204, 304):
            self._phase, self._need = _LENGTH, 0
        elif te is not None:
            if te.lower().split(b",")[-1].strip() == b"chunked":
                self._phase, self._need = _CHUNKED, _SIZE_LINE
            else:
                self._phase, self.reusable = _UNTIL_CLOSE, False
        elif b"content-length" in headers:
            raw = headers[b"content-length"]
            if not raw.isdigit():
                raise ResponseBroken(f"malformed response: Content-Length {raw[:40]!r}")
            if len(raw) > 18 or int(raw) > MAX_BODY:  # int() of 4300+ digits would raise
                raise BodyTooLarge(MAX_BODY)
            self._phase, self._need = _LENGTH, int(raw)
        else:
            self._phase, self.reusable = _UNTIL_CLOSE, False
        return True

    def _parse_chunk(self) -> bool:
        if self._need == _TRAILER:  # after the last chunk: optional trailers, then CRLF
            if self.buf.startswith((b"\r\n", b"\n")):
                del self.buf[: 2 if self.buf.startswith(b"\r") else 1]
            else:
                end, after = _blank_line(self.buf)
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise ResponseBroken("malformed response: trailer section too large")
                    return False
                del self.buf[:after]
            self._finish(bytes(self._body))
            return True
        if self._need == _SIZE_LINE:
            end = self.buf.find(b"\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    raise ResponseBroken("malformed response: chunk size line too long")
                return False
            field = bytes(self.buf[:end]).split(b";", 1)[0].strip()
            try:
                size = int(field, 16)
            except ValueError:
                raise ResponseBroken(f"malformed response: chunk size {field[:20]!r}") from None
            if size < 0:
                raise ResponseBroken("malformed response: negative chunk size")
            if len(self._body) + size > MAX_BODY:
                raise BodyTooLarge(MAX_BODY)
            del self.buf[: end + 1]
            self._need = size if size else _TRAILER
            return True
        n = self._need
        if len(self.buf) < n + 2 and not (len(self.buf) == n + 1 and self.buf[n:] == b"\n"):
            return False
        crlf = 2 if self.buf[n : n + 2] == b"\r\n" else 1 if self.buf[n : n + 1] == b"\n" else 0
        if not crlf:
            raise ResponseBroken("malformed response: chunk not followed by CRLF")
        self._body += self.buf[:n]
        del self.buf[: n + crlf]
        self._need = _SIZE_LINE
        return True


def _blank_line(buf: bytearray) -> tuple[int, int]:
    """Where the header section ends (before its blank line) and where the rest begins.

    Lines may end in CRLF or, leniently (RFC 9112 section 2.2), a bare LF.
    """
    crlf, lf = buf.find(b"\n\r\n"), buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 3
    if lf >= 0:
        return lf, lf + 2
    return -1, -1


class LeanTransport:
    """A pool of keep-alive connections per target, used one request at a time each."""

    def __init__(self) -> None:
        self._idle: dict[str, list[_Conn]] = {}
        self._all: set[_Conn] = set()
        self._hosts: dict[str, tuple[str, int, bytes]] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        for conn in list(self._all):
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing inside this loop

    async def request(
        self, base_url: str, call: HttpCall, connect_timeout: float
    ) -> tuple[int, bytes]:
        conn = await self._acquire(base_url, connect_timeout)
        host_header = self._hosts[base_url][2]
        body = call.body if call.body is not None else b""
        head = [
            f"{call.method} {call.path} HTTP/1.1\r\n".encode(),
            b"Host: ",
            host_header,
            b"\r\nUser-Agent: infragym\r\n",
        ]
        if body or call.method in ("POST", "PUT", "PATCH"):
            head.append(b"Content-Length: %d\r\n" % len(body))
        if call.content_type:
            head.append(f"Content-Type: {call.content_type}\r\n".encode())
        head.append(b"\r\n")
        try:
            return await conn.send(b"".join(head) + body, call.method)
        except BaseException:
            conn.reusable = False
            raise
        finally:
            self._release(base_url, conn)

    async def _acquire(self, base_url: str, connect_timeout: float) -> _Conn:
        idle = self._idle.get(base_url)
        while idle:
            conn = idle.pop()
            if conn.reusable and not conn.closed and not conn.buf:
                return conn
            self._drop(conn)
        if base_url not in self._hosts:
            parts = urlsplit(base_url)
            host = parts.hostname or ""
            self._hosts[base_url] = (host, parts.port or 80, parts.netloc.encode())
        host, port, _ = self._hosts[base_url]
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(_Conn, host, port)
        except TimeoutError:
            raise RequestNotSent(f"could not connect within {connect_timeout:g}s") from None
        except OSError as exc:
            raise RequestNotSent(f"could not connect: {exc}") from None
        self._all.add(conn)
        return conn

    def _release(self, base_url: str, conn: _Conn) -> None:
        if conn.reusable and not conn.closed and conn.waiter is None:
            self._idle.setdefault(base_url, []).append(conn)
        else:
            self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        self._all.discard(conn)
        if conn.transport is not None and not conn.closed:
            conn.transport.close()
