"""A service's answers cannot grow or starve the grading process: bodies are capped before
they are read, and the history keeps every value bounded (both transports, real sockets)."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path

import pytest
from workload_support import (  # the autouse fixture runs each test twice
    drive,
    raw_server,
    transport,  # noqa: F401
    well_formed,
)

from infragym.history import History, OpType, is_digest
from infragym.workload import KVGenerator, Mix, Stream

BIG = 4 << 20
MIB = 1 << 20


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def answering(framing: str, bodies: dict[str, bytes]):  # type: ignore[no-untyped-def]
    """A keep-alive server answering a read of key ``k`` with ``bodies[k]``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            key = head.split(b" ", 2)[1].decode().rsplit("/", 1)[-1]
            body = bodies[key]
            if framing == "length":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                writer.write(body)
            elif framing == "chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                step = 64 * 1024
                for i in range(0, len(body), step):
                    part = body[i : i + step]
                    writer.write(b"%x\r\n" % len(part) + part + b"\r\n")
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            else:  # delimited by the server closing the connection
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
            if framing == "close":
                return

    return answer


def run_reads(framing: str, bodies: dict[str, bytes], ops: int) -> History:
    async def main() -> History:
        history = History()
        async with raw_server(answering(framing, bodies)) as (_, url):
            gen = KVGenerator([url], mix=Mix(read=1), keys=list(bodies), seed=3)
            await drive(history, Stream(gen, rate=40, max_ops=ops, timeout=2.0))
        return history

    return asyncio.run(main())


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_huge_answers_fail_the_read_unread_and_keep_memory_and_history_small(
    framing: str, tmp_path: Path
) -> None:
    ops = 40  # 160 MiB of answers
    gc.collect()
    before = rss_bytes()
    history = run_reads(framing, {"a": b"x" * BIG}, ops)
    gc.collect()
    grown = rss_bytes() - before
    size = history.write_jsonl(tmp_path / "h.jsonl").stat().st_size
    well_formed(history)
    results = [(op.outcome, op.error) for op in history.operations()]
    assert len(results) == ops
    refused = [r for r in results if r[0] is OpType.FAIL and "body over 1 MiB" in str(r[1])]
    slow = [r for r in results if r[0] is OpType.INFO and str(r[1]).startswith("timeout")]
    assert len(refused) + len(slow) == ops and len(refused) >= ops // 2, results
    assert grown < 100 * MIB, f"the process grew by {grown >> 20} MiB"
    assert size < 64 * 1024, f"history.jsonl is {size} bytes"


def test_a_body_of_exactly_the_limit_is_read() -> None:
    history = run_reads("length", {"a": b"y" * MIB}, 2)
    for op in history.operations():
        assert op.outcome is OpType.OK and is_digest(op.result), op
        assert f"len={MIB}" in op.result


def test_invalid_utf8_answers_are_cheap_and_compared_by_digest(tmp_path: Path) -> None:
    # Decoding 1 MiB of 0xff with escapes costs ~0.2 s of CPU, holding the GIL: every
    # episode graded in the same process would starve. Now nothing decodes it.
    a, b = b"\xff" * MIB, b"\xfe" + b"\xff" * (MIB - 1)
    cpu = time.process_time()
    history = run_reads("length", {"a": a, "b": b, "c": a}, 30)
    cpu = time.process_time() - cpu
    by_key: dict[str | None, set[str]] = {}
    for op in history.operations():
        assert op.outcome is OpType.OK and is_digest(op.result) and len(op.result) < 200, op
        by_key.setdefault(op.key, set()).add(op.result)
    assert sorted(by_key) == ["a", "b", "c"] and all(len(v) == 1 for v in by_key.values())
    assert by_key["a"] == by_key["c"] != by_key["b"]  # equal bytes equal, different differ
    assert history.write_jsonl(tmp_path / "h.jsonl").stat().st_size < 64 * 1024
    assert cpu < 2.5, f"30 reads of 1 MiB took {cpu:.2f} s of CPU"
