"""The grader's HTTP probe against a real HTTP server on 127.0.0.1: each failure's message
says which request on which node answered what, and what was expected."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from infragym.grading import ExpectationFailed, HttpProbe

Check = Callable[[HttpProbe], Awaitable[object]]


class Nodes:
    """Two "nodes" on one server: /a/kv/ is a store, /b/kv/ a replica that only learns a
    write after ``lag`` seconds; key "boom" answers 500, "huge" a 2 MiB body."""

    def __init__(self, lag: float = 0.0) -> None:
        self.stores: dict[str, dict[str, bytes]] = {"a": {}, "b": {}}
        self.lag = lag

    async def handle(self, req: web.Request) -> web.StreamResponse:
        node, key = req.match_info["node"], req.match_info["key"]
        if key == "boom":
            return web.Response(status=500, text="internal error: " + "x" * 100)
        if key == "huge":
            return web.Response(body=b"y" * (2 << 20))
        if req.method == "PUT":
            body = await req.read()
            self.stores["a"][key] = body
            later = asyncio.get_running_loop().call_later
            later(self.lag, self.stores["b"].__setitem__, key, body)
            return web.Response(status=204)
        store = self.stores[node]
        if key not in store:
            return web.Response(status=404)
        return web.Response(body=store[key])


@asynccontextmanager
async def serving(nodes: Nodes) -> AsyncIterator[dict[str, str]]:
    app = web.Application()
    app.router.add_route("*", "/{node}/kv/{key}", nodes.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield {"n1": f"http://127.0.0.1:{port}/a", "n2": f"http://127.0.0.1:{port}/b"}
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def failure(check: Check, nodes: Nodes | None, visible_s: float) -> str:
    async with serving(nodes or Nodes()) as urls, HttpProbe.open(
        urls, prefix="/kv/", tag="t0", visible_s=visible_s
    ) as probe:
        try:
            await check(probe)
        except ExpectationFailed as exc:
            return str(exc)
    return "passed"


def run(check: Check, nodes: Nodes | None = None, visible_s: float = 1.0) -> str:
    return asyncio.run(failure(check, nodes, visible_s))


def test_a_correct_service_passes_every_expectation() -> None:
    async def check(p: HttpProbe) -> None:
        assert p.tag == "t0" and p.nodes == ["n1", "n2"]
        await p.put_visible("n1", "k", "héllo")
        await p.expect("n2", "k", "héllo")
        await p.expect("n1", "missing", None)
        assert await p.get("n2", "k") == (200, "héllo".encode())
        assert await p.ready("k", 1.0) == []

    assert run(check) == "passed"


def test_any_api_is_checked_by_status_and_body() -> None:
    async def check(p: HttpProbe) -> None:
        await p.put("n1", "k", "hello world")
        assert await p.expect_answer("n1", "k", equals=b"hello world") == b"hello world"
        await p.expect_answer("n1", "k", 200, contains=b"world")
        await p.expect_answer("n1", "missing", 404)
        await p.expect_answer("n1", "k2", range(200, 300), method="PUT", body=b"x")

    assert run(check) == "passed"
    msg = run(lambda p: p.expect_answer("n1", "missing"))
    assert msg == "GET /kv/missing on n1: HTTP 404 '', expected HTTP 200-299"
    msg = run(lambda p: p.expect_answer("n2", "boom", 200, contains=b"ok"))
    assert msg.startswith("GET /kv/boom on n2: HTTP 500 'internal error: x")
    assert msg.endswith("expected HTTP 200 holding 'ok'"), msg

    async def wrong_body(p: HttpProbe) -> None:
        await p.put("n1", "k", "abc")
        await p.expect_answer("n1", "k", equals=b"abd")

    assert run(wrong_body) == "GET /kv/k on n1: HTTP 200 'abc', expected HTTP 200-299 'abd'"


def test_a_wrong_value_and_a_wrong_status_say_what_came_back() -> None:
    async def wrong_value(p: HttpProbe) -> None:
        await p.put("n1", "k", "old")
        await p.expect("n1", "k", "new")

    assert run(wrong_value) == "GET /kv/k on n1: HTTP 200 'old', expected HTTP 200 'new'"

    async def not_missing(p: HttpProbe) -> None:
        await p.put("n1", "k", "v")
        await p.expect("n2", "k", None)

    assert run(not_missing) == "GET /kv/k on n2: HTTP 200 'v', expected HTTP 404"
    msg = run(lambda p: p.put("n2", "boom", "v"))
    assert msg == "PUT /kv/boom on n2 answered 500, expected 2xx"
    msg = run(lambda p: p.expect("n1", "boom", "v" * 100))
    assert msg == (f"GET /kv/boom on n1: HTTP 500 'internal error: {'x' * 44}'..., "
                   f"expected HTTP 200 '{'v' * 60}...'")  # fmt: skip


def test_a_write_not_visible_in_time_names_the_node_and_the_wait() -> None:
    msg = run(lambda p: p.put_visible("n1", "k", "v"), Nodes(lag=5.0), visible_s=0.3)
    assert msg == "GET /kv/k on n2: still HTTP 404 '' 0.3 s after the write, expected HTTP 200 'v'"
    # a replica that catches up within the wait passes
    assert run(lambda p: p.put_visible("n1", "k", "v"), Nodes(lag=0.2), visible_s=2.0) == "passed"


def test_no_answer_and_a_huge_answer_fail_readably() -> None:
    async def refused() -> str:
        urls = {"n1": f"http://127.0.0.1:{free_port()}"}
        async with HttpProbe.open(urls, prefix="/kv/") as p:
            try:
                await p.get("n1", "k")
            except ExpectationFailed as exc:
                return str(exc)
            late = await p.ready("k", 0.3)
            return "passed " + ";".join(late)

    msg = asyncio.run(refused())
    assert msg.startswith("GET /kv/k on n1: ClientConnectorError"), msg
    msg = run(lambda p: p.get("n1", "huge"))
    assert msg.startswith("GET /a/kv/huge: "), msg
    assert "limit" in msg


def test_ready_reports_the_nodes_that_never_answered() -> None:
    async def check() -> list[str]:
        urls = {"n1": f"http://127.0.0.1:{free_port()}"}
        async with HttpProbe.open(urls, prefix="/kv/", request_s=0.2) as p:
            return await p.ready("k", 0.3)

    late = asyncio.run(check())
    assert len(late) == 1 and late[0].startswith("n1: not ready after 0.3 s (GET /kv/k on n1: ")


@pytest.mark.parametrize("n", [1, 3])
def test_the_tag_is_fresh_randomness(n: int) -> None:
    async def tags() -> set[str]:
        out = set()
        for _ in range(n + 1):
            async with HttpProbe.open({"n1": "http://127.0.0.1:9"}) as p:
                out.add(p.tag)
        return out

    assert len(asyncio.run(tags())) == n + 1
