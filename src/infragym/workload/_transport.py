"""The HTTP client a runner sends every request through: aiohttp, or the lean one.

One keep-alive pool per runner, shared by all streams, keeps connection setup out of the
measured latency and a run's sockets bounded. The pool is as large as the runner's
in-flight limit, so an operation never waits inside the client for a connection: any
waiting it does is the server's doing and shows in its latency from the intended start.
"""

from __future__ import annotations

from typing import Literal, Protocol

import aiohttp

from .._errors import ConfigError
from ._outcome import MAX_BODY_BYTES, BodyTooLarge
from ._spec import HttpCall

TransportName = Literal["aiohttp", "lean"]


class Transport(Protocol):
    """Sends one request and returns (status, body); raises on anything else."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def request(
        self, base_url: str, call: HttpCall, connect_timeout: float
    ) -> tuple[int, bytes]: ...


def make_transport(name: TransportName, max_connections: int) -> Transport:
    if name == "aiohttp":
        return HttpTransport(max_connections)
    if name == "lean":
        from ._lean import LeanTransport

        return LeanTransport()
    raise ConfigError(f"transport must be 'aiohttp' or 'lean', got {name!r}")


class HttpTransport:
    """Sends one request per operation, never retried and never redirected."""

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, use_dns_cache=False
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # aiohttp resends an idempotent request once when a reused keep-alive connection
        # turns out dead; a resent write is a second write the history cannot see.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        self._session = session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def request(
        self, base_url: str, call: HttpCall, connect_timeout: float
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None:
            raise RuntimeError("the transport is not open; use the Runner as `async with`")
        timeout = self._timeouts.get(connect_timeout)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout)
            self._timeouts[connect_timeout] = timeout
        headers = None if call.content_type is None else {"Content-Type": call.content_type}
        async with session.request(
            call.method,
            base_url + call.path,
            data=call.body,
            headers=headers,
            allow_redirects=False,
            timeout=timeout,
        ) as resp:
            return resp.status, await read_body(resp)


async def read_body(resp: aiohttp.ClientResponse, limit: int = MAX_BODY_BYTES) -> bytes:
    """An aiohttp response's body, never read past ``limit`` bytes.

    Raises :class:`BodyTooLarge` (and closes the connection, whose rest is unread) when
    the Content-Length says more than ``limit``, before reading any of the body, or when
    a chunked or close-delimited body reaches ``limit + 1`` bytes.
    """
    length = resp.content_length
    bodiless = resp.method == "HEAD" or resp.status in (204, 304)  # a length, but no body
    if length is not None and length > limit and not bodiless:
        resp.close()
        raise BodyTooLarge(limit)
    parts: list[bytes] = []
    got = 0
    while got <= limit:
        chunk = await resp.content.read(limit + 1 - got)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        got += len(chunk)
    resp.close()
    raise BodyTooLarge(limit)
