"""A history stays bounded whatever a service answers: long or non-UTF-8 values are kept as
digests the checkers still compare correctly, and a history stops growing at its limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from workload_support import raw_server, read_request

from infragym.checkers import Linearizable, StaleReads, Verdict
from infragym.grading import ExpectationFailed, read_capped
from infragym.history import (
    MAX_VALUE_BYTES,
    Clock,
    History,
    OpEvent,
    OpType,
    is_digest,
    stored_bytes,
    stored_value,
)
from infragym.workload import KVGenerator, Mix, Stream, run_workload


def test_long_and_non_utf8_values_are_digests_that_compare_like_the_values() -> None:
    long = "v" * (MAX_VALUE_BYTES + 1)
    assert stored_value("k:1") == "k:1" == stored_bytes(b"k:1")
    assert stored_value("é" * 128) == "é" * 128  # 256 bytes: kept as is
    assert is_digest(stored_value(long)) and len(stored_value(long)) < 200
    assert stored_value(long) == stored_bytes(long.encode())  # a write and its read agree
    assert stored_value(long) != stored_value(long + "w") != stored_bytes(b"\xff" * 300)
    assert stored_value(stored_value(long)) == stored_value(long)  # applied twice: same
    assert stored_value(["k:1", long]) == ["k:1", stored_value(long)]  # a cas
    assert is_digest(stored_bytes(b"\xff")) and stored_bytes(b"\xff") != stored_bytes(b"\xfe")
    # a service cannot answer with a digest's text to pass for the long value
    assert stored_bytes(stored_value(long).encode()) != stored_value(long)


def _history(written: str, read: bytes) -> History:
    h = History()
    w, r = stored_value(written), stored_bytes(read)
    h.append(OpEvent(OpType.INVOKE, 0, "write", 0.0, "k", w, 0.0, "n1"))
    h.append(OpEvent(OpType.OK, 0, "write", 1.0, "k", w, None, "n1"))
    h.append(OpEvent(OpType.INVOKE, 1, "read", 2.0, "k", None, 2.0, "n1"))
    h.append(OpEvent(OpType.OK, 1, "read", 3.0, "k", r, None, "n1"))
    return h


@pytest.mark.parametrize("size", [10, 5000])
def test_checkers_compare_stored_values(size: int, tmp_path: Path) -> None:
    value = "x" * size
    same = _history(value, value.encode())
    other = _history(value, value.encode()[:-1] + b"y")
    for h, verdict in ((same, Verdict.PASS), (other, Verdict.FAIL)):
        back = History.read_jsonl(h.write_jsonl(tmp_path / "h.jsonl"))
        for checker in (Linearizable(), StaleReads()):
            assert checker.check(back).verdict is verdict, (size, checker)


def test_a_history_stops_growing_at_its_limit_and_says_so(tmp_path: Path) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async def main() -> History:
        history = History(max_op_events=11)
        async with raw_server(answer) as (_, url):
            gen = KVGenerator([url], mix=Mix(read=1))
            stream = Stream(gen, rate=200, max_ops=20)
            await asyncio.to_thread(run_workload, history, Clock(), stream)
        return history

    history = asyncio.run(main())
    assert len(history.ops) == 11 and history.truncated
    assert history.meta["truncated"] == {"max_op_events": 11, "dropped": 29}
    ops = history.operations()  # still well formed: the dropped completions read as info
    assert 6 <= len(ops) <= 11 and any(op.error == "never completed" for op in ops)
    back = History.read_jsonl(history.write_jsonl(tmp_path / "h.jsonl"))
    assert back.meta["truncated"]["dropped"] == 29


def test_read_capped_refuses_a_huge_answer_as_a_failed_expectation() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(64):
            writer.write(b"10000\r\n" + b"z" * 0x10000 + b"\r\n")  # 4 MiB in all
            await writer.drain()

    async def main() -> str:
        async with (
            raw_server(answer) as (_, url),
            aiohttp.ClientSession() as session,
            session.get(f"{url}/kv/big") as resp,
        ):
            with pytest.raises(ExpectationFailed) as info:
                await read_capped(resp)
            return str(info.value)

    message = asyncio.run(main())
    assert "GET /kv/big" in message and "over 1 MiB" in message
