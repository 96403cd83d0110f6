"""Servers and helpers shared by the workload tests (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from infragym.history import Clock, History, OpEvent, OpType
from infragym.workload import (
    KVGenerator,
    Mix,
    RequestGenerator,
    Runner,
    RunSummary,
    Stream,
    _runner,
)


@pytest.fixture(autouse=True, params=["aiohttp", "lean"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with both HTTP transports: they must agree on every outcome."""
    monkeypatch.setattr(_runner, "DEFAULT_TRANSPORT", request.param)
    return str(request.param)


# -- servers ---------------------------------------------------------------------------


@dataclass
class KVServer:
    """The key-value API, plus knobs to make it slow, serial or answer a fixed status."""

    store: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    serial: float = 0.0
    status: int | None = None
    requests: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _pre(self) -> web.Response | None:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.serial:
            async with self.lock:
                await asyncio.sleep(self.serial)
        if self.status is not None:
            return web.Response(status=self.status, text="forced")
        return None

    async def get(self, req: web.Request) -> web.Response:
        if (forced := await self._pre()) is not None:
            return forced
        key = req.match_info["key"]
        if key not in self.store:
            return web.Response(status=404)
        return web.Response(body=self.store[key].encode())

    async def put(self, req: web.Request) -> web.Response:
        body = await req.read()
        if (forced := await self._pre()) is not None:
            return forced
        self.store[req.match_info["key"]] = body.decode()
        return web.Response(status=204)

    async def cas(self, req: web.Request) -> web.Response:
        doc = await req.json()
        if (forced := await self._pre()) is not None:
            return forced
        key = req.match_info["key"]
        if self.store.get(key) != doc["expected"]:
            return web.Response(status=409)
        self.store[key] = doc["new"]
        return web.Response(status=200)

    async def status_path(self, req: web.Request) -> web.Response:
        return web.Response(status=int(req.match_info["code"]), headers={"Location": "/"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/kv/{key}", self.get)
        app.router.add_put("/kv/{key}", self.put)
        app.router.add_post("/kv/{key}/cas", self.cas)
        app.router.add_route("*", "/status/{code}", self.status_path)
        return app


@asynccontextmanager
async def kv_server(server: KVServer | None = None) -> AsyncIterator[tuple[KVServer, str]]:
    server = server or KVServer()
    runner = web.AppRunner(
        server.app(), access_log=None, shutdown_timeout=0.2, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[list[int], str]]:
    """A bare TCP server; yields (a one-element connection counter, base URL)."""
    writers: list[asyncio.StreamWriter] = []
    accepted = [0]

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield accepted, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, val = line.partition(b":")
        if name.strip().lower() == b"content-length" and int(val):
            await reader.readexactly(int(val))


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client goes away


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- helpers ---------------------------------------------------------------------------


async def drive(history: History, *streams: Stream, **kw: float) -> RunSummary:
    async with Runner(history, Clock(), **kw) as runner:  # type: ignore[arg-type]
        return await runner.run(*streams)


def well_formed(history: History) -> dict[int, tuple[OpEvent, OpEvent | None]]:
    """Every id invoked once, completed at most once, after its invoke, on its node."""
    pairs: dict[int, tuple[OpEvent, OpEvent | None]] = {}
    for e in history.ops:
        if e.type is OpType.INVOKE:
            assert e.id not in pairs, f"id {e.id} invoked twice"
            assert e.intended is not None
            pairs[e.id] = (e, None)
        else:
            inv, comp = pairs[e.id]
            assert comp is None, f"id {e.id} completed twice"
            assert e.time >= inv.time and e.node == inv.node and e.f == inv.f
            pairs[e.id] = (inv, e)
    history.operations()  # the contract's own pairing agrees
    return pairs


def completions(history: History) -> list[OpEvent]:
    return [e for e in history.ops if e.type is not OpType.INVOKE]


def one_request(url: str, path: str, timeout: float = 2.0) -> OpEvent:
    history = History()
    gen = RequestGenerator([url], path=path)
    asyncio.run(drive(history, Stream(gen, rate=100, max_ops=1, timeout=timeout)))
    well_formed(history)
    (done,) = completions(history)
    return done


def one_kv(server: KVServer, op: str, timeout: float = 2.0) -> OpEvent:
    async def main() -> History:
        history = History()
        async with kv_server(server) as (_, url):
            gen = KVGenerator([url], mix=Mix(**{op: 1.0}), keys=["a"])
            await drive(history, Stream(gen, rate=100, max_ops=1, timeout=timeout))
        return history

    history = asyncio.run(main())
    well_formed(history)
    (done,) = completions(history)
    return done


HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
