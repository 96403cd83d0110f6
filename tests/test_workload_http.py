"""Outcomes of HTTP exchanges, with both transports against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import threading
import time

import pytest
from workload_support import (  # the autouse fixture runs each test twice
    HELLO,
    KVServer,
    closed_port_url,
    drive,
    kv_server,
    one_kv,
    one_request,
    raw_server,
    read_request,
    transport,  # noqa: F401
    well_formed,
)

from infragym.history import Clock, History, OpEvent, OpType
from infragym.workload import (
    KVGenerator,
    Mix,
    RequestGenerator,
    Runner,
    Stream,
    run_workload,
)

# -- outcomes --------------------------------------------------------------------------


def test_a_request_past_its_timeout_is_info() -> None:
    async def main() -> History:
        history = History()
        async with kv_server(KVServer(delay=1.0)) as (_, url):
            await drive(history, Stream(KVGenerator([url]), rate=100, max_ops=3, timeout=0.2))
        return history

    history = asyncio.run(main())
    pairs = well_formed(history)
    assert len(pairs) == 3
    for inv, done in pairs.values():
        assert done is not None and done.type is OpType.INFO
        assert done.error is not None and "timeout" in done.error
        assert 0.2 <= done.time - inv.time < 0.6


def test_a_refused_connection_is_fail() -> None:
    done = one_request(closed_port_url(), "/")
    assert done.type is OpType.FAIL
    assert done.error is not None and "connect" in done.error


def test_a_connect_that_hangs_is_fail_after_half_the_timeout() -> None:
    # A listener whose accept queue is full drops SYNs, as a partitioned host would.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for c in fillers:
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
            time.sleep(0.05)
            done = one_request(f"http://127.0.0.1:{port}", "/", timeout=0.4)
        finally:
            for c in fillers:
                c.close()
    assert done.type is OpType.FAIL
    assert done.error == "could not connect within 0.2s"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (200, OpType.OK),
        (204, OpType.OK),
        (400, OpType.FAIL),
        (404, OpType.FAIL),
        (409, OpType.FAIL),
        (503, OpType.FAIL),
        (500, OpType.INFO),
        (502, OpType.INFO),
        (504, OpType.INFO),
        (302, OpType.INFO),
    ],
)
def test_generic_request_status_outcomes(code: int, outcome: OpType) -> None:
    async def main() -> OpEvent:
        async with kv_server() as (_, url):
            return await asyncio.to_thread(one_request, url, f"/status/{code}")

    done = asyncio.run(main())
    assert done.type is outcome
    assert done.value == code  # the status is recorded, and a 302 was not followed


@pytest.mark.parametrize(
    ("op", "status", "outcome"),
    [
        ("write", 503, OpType.FAIL),
        ("write", 500, OpType.INFO),
        ("write", 400, OpType.FAIL),
        ("read", 503, OpType.FAIL),
        ("read", 500, OpType.INFO),
        ("read", 204, OpType.INFO),
        ("cas", 503, OpType.FAIL),
        ("cas", 500, OpType.INFO),
    ],
)
def test_kv_forced_status_outcomes(op: str, status: int, outcome: OpType) -> None:
    done = one_kv(KVServer(status=status), op)
    assert done.type is outcome
    assert done.error is not None and done.error.startswith(f"HTTP {status}")


def test_read_of_absent_key_is_ok_none_and_cas_conflict_is_fail() -> None:
    read = one_kv(KVServer(), "read")
    assert read.type is OpType.OK and read.value is None
    present = one_kv(KVServer(store={"a": "hello"}), "read")
    assert present.type is OpType.OK and present.value == "hello"
    conflict = one_kv(KVServer(store={"a": "someone else's"}), "cas")
    assert conflict.type is OpType.FAIL and "409" in (conflict.error or "")
    assert conflict.value == [None, "kv:0"]
    swapped = one_kv(KVServer(), "cas")  # expects absent, and it is
    assert swapped.type is OpType.OK


def test_kv_workload_against_a_correct_store_reads_what_was_written() -> None:
    async def main() -> tuple[History, KVServer]:
        history = History()
        async with kv_server() as (server, url):
            gen = KVGenerator([url], seed=3, mix=Mix(read=2, write=1, cas=1), keys=3)
            other = KVGenerator([url], seed=4, mix=Mix(write=1), keys=3, name="other")
            async with Runner(history, Clock()) as runner:
                await runner.run(
                    Stream(gen, rate=400, max_ops=200), Stream(other, rate=100, max_ops=50)
                )
                await runner.final_read([url])
        return history, server

    history, server = asyncio.run(main())
    well_formed(history)
    ops = history.operations()
    assert all(op.definite for op in ops)
    written = {(op.key, op.value) for op in ops if op.f == "write" and op.ok}
    written |= {(op.key, op.value[1]) for op in ops if op.f == "cas" and op.ok}
    reads = [op for op in ops if op.f == "read" and op.ok]
    assert any(r.result is None for r in reads) and any(r.result is not None for r in reads)
    for r in reads:
        assert r.result is None or (r.key, r.result) in written
    # cas expects this generator's own last value, so the other writer makes some fail
    assert {op.outcome for op in ops if op.f == "cas"} == {OpType.OK, OpType.FAIL}
    final = ops[-3:]
    assert [op.f for op in final] == ["read"] * 3
    assert {op.key: op.result for op in final} == server.store


@pytest.mark.parametrize(
    ("reply", "what"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "truncated"),
        (b"", "server disconnected"),
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nhello", "malformed"),
    ],
)
def test_broken_responses_after_sending_are_info(reply: bytes, what: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    async def main() -> OpEvent:
        async with raw_server(answer) as (_, url):
            return await asyncio.to_thread(one_request, url, "/")

    done = asyncio.run(main())
    assert done.type is OpType.INFO
    assert done.error is not None and what in done.error


@pytest.mark.parametrize(
    ("reply", "server_closes", "connections"),
    [
        (HELLO, False, 1),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: 1\r\n\r\n",
            False,
            1,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", False, 1),
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", True, 3),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", True, 3),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", False, 1),  # split write
        (b"HTTP/1.1 100 Continue\r\n\r\n" + HELLO, False, 1),  # interim response first
        (b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", False, 1),  # bare LF line ends
    ],
)
def test_response_framing_and_keep_alive(
    reply: bytes, server_closes: bool, connections: int
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(reply)
            await writer.drain()
            if reply.endswith(b"hel"):
                await asyncio.sleep(0.01)
                writer.write(b"lo")
            if server_closes:
                return

    async def main() -> tuple[History, int]:
        history = History()
        async with raw_server(answer) as (accepted, url):
            gen = KVGenerator([url], mix=Mix(read=1))
            await drive(history, Stream(gen, rate=20, max_ops=3))
            return history, accepted[0]

    history, accepted = asyncio.run(main())
    assert [(op.outcome, op.result) for op in history.operations()] == [(OpType.OK, "hello")] * 3
    assert accepted == connections


@pytest.mark.parametrize("length", [5, 4 << 20])  # over the body limit: still no body
def test_head_responses_have_no_body_even_with_a_content_length(length: int) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                await read_request(reader)
                writer.write(reply)

    async def main() -> tuple[History, int]:
        history = History()
        async with raw_server(answer) as (accepted, url):
            gen = RequestGenerator([url], method="HEAD")
            await drive(history, Stream(gen, rate=20, max_ops=3, timeout=0.5))
            return history, accepted[0]

    history, accepted = asyncio.run(main())
    assert [op.outcome for op in history.operations()] == [OpType.OK] * 3
    assert accepted == 1


@pytest.mark.parametrize("protocol", ["HTTP/1.0", "HTTP/1.1"])
def test_against_the_standard_library_http_server(protocol: str) -> None:
    store: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = protocol

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            value = store.get(self.path)
            self.send_response(200 if value is not None else 404)
            self.send_header("Content-Length", str(len(value or b"")))
            self.end_headers()
            self.wfile.write(value or b"")

        def do_PUT(self) -> None:
            store[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        history = History()
        gen = KVGenerator([url], seed=2, mix=Mix(read=1, write=1), keys=2)
        run_workload(history, Clock(), Stream(gen, rate=100, max_ops=40))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    ops = history.operations()
    assert all(op.ok for op in ops)
    writes = [op for op in ops if op.f == "write"]
    for r in (op for op in ops if op.f == "read"):
        seen = [w.value for w in writes if w.key == r.key and w.invoke < r.complete]
        assert r.result is None or r.result in seen
        if any(w.key == r.key and w.complete < r.invoke for w in writes):
            assert r.result is not None


def test_a_request_is_never_silently_resent_on_a_stale_keep_alive_connection() -> None:
    # The first connection answers once, then takes the next request and closes without a
    # word. A client that retried it on a new connection would turn a possibly-applied
    # write into a second, invisible one; it must be recorded as info instead.
    seen = [0]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first_connection = seen[0] == 0
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                await read_request(reader)
                seen[0] += 1
                if first_connection and seen[0] == 2:
                    return
                writer.write(HELLO)

    async def main() -> History:
        history = History()
        async with raw_server(answer) as (_, url):
            gen = KVGenerator([url], mix=Mix(write=1))
            await drive(history, Stream(gen, rate=20, max_ops=3, timeout=1.0))
        return history

    history = asyncio.run(main())
    assert [op.outcome for op in history.operations()] == [OpType.OK, OpType.INFO, OpType.OK]
    assert seen[0] == 3


def test_a_reset_after_the_request_was_sent_is_info() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    async def main() -> OpEvent:
        async with raw_server(reset) as (_, url):
            return await asyncio.to_thread(one_request, url, "/")

    assert asyncio.run(main()).type is OpType.INFO
