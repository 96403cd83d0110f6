"""The grader's HTTP client for functional tests: one request at a time, every answer read
capped, and every failure an :class:`ExpectationFailed` whose message says which request on
which node answered what, and what was expected::

    GET /kv/a on n2: still HTTP 404 '' 1 s after the write, expected HTTP 200 'x'

``put``, ``expect`` and ``eventually`` read values the key-value way (a 404 is an absent
value); :meth:`HttpProbe.expect_answer` checks any API's status and body.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import aiohttp

from ._bodies import read_capped
from ._functional import ExpectationFailed

__all__ = ["HttpProbe", "ProbeTest"]

SHOWN = 60


class HttpProbe:
    """Requests to the nodes of a deployment by node name (``urls``: name to base URL).

    ``prefix`` is put before every path (``"/kv/"``: ``put("n1", "a", "x")`` is ``PUT
    /kv/a``). ``tag`` is a fresh random token per run (never the seed) for tests to put in
    what they write, so values differ in every run. ``visible_s`` is how long
    :meth:`eventually` waits for a write to show on every node.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: Mapping[str, str],
        *,
        prefix: str = "",
        tag: str | None = None,
        visible_s: float = 1.0,
    ) -> None:
        self.session = session
        self.urls = dict(urls)
        self.nodes = list(urls)
        self.prefix = prefix
        self.tag = tag if tag is not None else secrets.token_hex(4)
        self.visible_s = visible_s

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        urls: Mapping[str, str],
        *,
        request_s: float = 1.0,
        prefix: str = "",
        tag: str | None = None,
        visible_s: float = 1.0,
    ) -> AsyncIterator[HttpProbe]:
        """A probe with its own session, each request bounded by ``request_s``."""
        timeout = aiohttp.ClientTimeout(total=request_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield cls(session, urls, prefix=prefix, tag=tag, visible_s=visible_s)

    async def request(
        self, method: str, node: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        """``method`` on ``prefix + path`` of ``node``: its status and (capped) body. No
        answer (refused, reset, timed out) fails the expectation, saying which."""
        where = f"{method} {self.prefix}{path} on {node}"
        try:
            async with self.session.request(
                method, f"{self.urls[node]}{self.prefix}{path}", data=body
            ) as resp:
                return resp.status, await read_capped(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ExpectationFailed(f"{where}: {type(exc).__name__} {exc}".rstrip()) from None

    async def put(self, node: str, path: str, value: str) -> None:
        """PUT ``value`` (UTF-8) and expect a 2xx."""
        status, _ = await self.request("PUT", node, path, value.encode("utf-8"))
        if not 200 <= status < 300:
            raise ExpectationFailed(
                f"PUT {self.prefix}{path} on {node} answered {status}, expected 2xx"
            )

    async def get(self, node: str, path: str) -> tuple[int, bytes]:
        return await self.request("GET", node, path)

    async def expect(self, node: str, path: str, value: str | None) -> None:
        """``node`` serves ``value`` (None: a 404) at ``path`` right now."""
        status, body = await self.get(node, path)
        if not _matches(status, body, value):
            raise ExpectationFailed(
                f"GET {self.prefix}{path} on {node}: {_show(status, body)}, expected {_want(value)}"
            )

    async def expect_answer(
        self,
        node: str,
        path: str,
        status: int | range = range(200, 300),
        *,
        method: str = "GET",
        body: bytes | None = None,
        equals: bytes | None = None,
        contains: bytes | None = None,
    ) -> bytes:
        """Any HTTP API, not only a key-value one: ``method`` on ``path`` of ``node`` (with
        ``body``) answers ``status`` (a code, or a range: any 2xx by default) and a body
        equal to ``equals`` or holding ``contains`` (when given); returns the body."""
        got, answer = await self.request(method, node, path, body)
        ok = got in status if isinstance(status, range) else got == status
        if ok and equals is not None:
            ok = answer == equals
        if ok and contains is not None:
            ok = contains in answer
        if not ok:
            want = (
                f"HTTP {status.start}-{status.stop - 1}"
                if isinstance(status, range)
                else f"HTTP {status}"
            )
            if equals is not None:
                want += f" {_clip(equals)!r}"
            if contains is not None:
                want += f" holding {_clip(contains)!r}"
            raise ExpectationFailed(
                f"{method} {self.prefix}{path} on {node}: {_show(got, answer)}, expected {want}"
            )
        return answer

    async def eventually(
        self, path: str, value: str | None, nodes: list[str] | None = None
    ) -> None:
        """Every node (of ``nodes``) serves ``value`` at ``path`` within ``visible_s``."""
        deadline = time.monotonic() + self.visible_s
        for node in nodes or self.nodes:
            while True:
                status, body = await self.get(node, path)
                if _matches(status, body, value):
                    break
                if time.monotonic() >= deadline:
                    raise ExpectationFailed(
                        f"GET {self.prefix}{path} on {node}: still {_show(status, body)} "
                        f"{self.visible_s:g} s after the write, expected {_want(value)}"
                    )
                await asyncio.sleep(0.05)

    async def put_visible(self, node: str, path: str, value: str) -> None:
        """PUT ``value`` on ``node``; every node serves it within ``visible_s``."""
        await self.put(node, path, value)
        await self.eventually(path, value)

    async def ready(self, path: str, timeout: float) -> list[str]:
        """Give every node up to ``timeout`` seconds in all to answer a GET of ``path`` with
        200 or 404 (to elect a leader, say); the nodes that did not, and why."""
        deadline = time.monotonic() + timeout
        late: list[str] = []
        for node in self.nodes:
            last = "no answer"
            while True:
                if time.monotonic() >= deadline:
                    late.append(f"{node}: not ready after {timeout:g} s ({last})")
                    break
                try:
                    status, body = await self.get(node, path)
                    if status in (200, 404):
                        break
                    last = _show(status, body)
                except ExpectationFailed as exc:
                    last = str(exc)
                await asyncio.sleep(0.1)
        return late


def _matches(status: int, body: bytes, value: str | None) -> bool:
    if value is None:
        return status == 404
    return status == 200 and body == value.encode("utf-8")


def _show(status: int, body: bytes) -> str:
    text = body[:SHOWN].decode("utf-8", errors="replace")
    return f"HTTP {status} {text!r}" + ("..." if len(body) > SHOWN else "")


def _clip(b: bytes) -> str:
    text = b[:SHOWN].decode("utf-8", errors="replace")
    return text + ("..." if len(b) > SHOWN else "")


def _want(value: str | None) -> str:
    if value is None:
        return "HTTP 404"
    shown = value[:SHOWN] + ("..." if len(value) > SHOWN else "")
    return f"HTTP 200 {shown!r}"


ProbeTest = Callable[[HttpProbe], Awaitable[None]]
"""A functional test: it raises :class:`ExpectationFailed` (as the probe's calls do) when
the system breaks its contract."""
