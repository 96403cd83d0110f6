"""Final reads that got no answer are read again (``read_back``), against real servers on
127.0.0.1: a briefly unanswering server's writes are judged, a lost write still fails, a
server that never answers leaves them unjudged."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field, replace

from aiohttp import web
from workload_support import KVServer, kv_server

from infragym.checkers import Availability, LostWrites, Verdict
from infragym.history import Clock, History
from infragym.workload import (
    HttpCall,
    KVClient,
    Op,
    ReadBack,
    Runner,
    Stream,
    WriteOnce,
    final_read_stream,
    read_back,
    unanswered_reads,
)


@dataclass
class Flaky(KVServer):
    """Answers 503 to the first ``misses`` reads of each key in ``keys`` (every read of
    them if ``misses`` is None), and forgets the keys in ``forget``."""

    keys: frozenset[str] = frozenset()
    misses: int | None = 1
    forget: frozenset[str] = frozenset()
    reads: Counter[str] = field(default_factory=Counter)

    async def get(self, req: web.Request) -> web.Response:
        key = req.match_info["key"]
        self.reads[key] += 1
        if key in self.keys and (self.misses is None or self.reads[key] <= self.misses):
            return web.Response(status=503, text="busy")
        if key in self.forget:
            return web.Response(status=404)
        return await super().get(req)


def _run(
    server: Flaky,
    deadline_after: float | None = None,
    client: KVClient | None = None,
    **kw: float | bool,
) -> tuple[History, ReadBack, Flaky]:
    """Six keys written once, then read back through ``read_back`` (``deadline_after``:
    seconds after the final reads start)."""

    async def main() -> tuple[History, ReadBack]:
        history, clock = History(), Clock()
        async with kv_server(server) as (_, url):
            gen = WriteOnce([url], [f"k{i}" for i in range(6)])
            async with Runner(history, clock) as runner:
                await runner.run(Stream(gen, rate=200, max_ops=6))
            final = replace(final_read_stream(history, [url], timeout=1.0), client=client)
            deadline = None if deadline_after is None else clock.now() + deadline_after
            back = await read_back(
                history, clock, final, [url], deadline=deadline, **{"pause_s": 0.05, **kw}
            )
        return history, back

    history, back = asyncio.run(main())
    return history, back, server


def test_a_read_that_got_no_answer_is_read_again_and_its_writes_judged() -> None:
    history, back, server = _run(Flaky(keys=frozenset({"k1", "k4"}), misses=2))
    assert back == ReadBack(attempts=3, unanswered=0)
    assert server.reads["k1"] == server.reads["k4"] == 3  # two 503s, then the value
    assert server.reads["k0"] == 1  # an answered key is read once
    result = LostWrites().check(history)
    assert result.verdict is Verdict.PASS, result.detail
    # every attempt is in the history: the unanswered reads stay recorded as failures
    finals = [op for op in history.operations() if op.f == "read"]
    assert sum(not op.ok for op in finals) == 4


def test_without_retries_the_same_writes_stay_unjudged() -> None:
    history, back, _ = _run(Flaky(keys=frozenset({"k1"}), misses=1), retries=0)
    assert back == ReadBack(attempts=1, unanswered=1)
    assert LostWrites().check(history).verdict is Verdict.UNKNOWN


def test_a_lost_write_still_fails_however_often_it_is_read() -> None:
    history, back, server = _run(Flaky(keys=frozenset({"k2"}), misses=1, forget=frozenset({"k2"})))
    assert (
        back.unanswered == 0 and server.reads["k2"] == 2
    )  # 503, then an answer: the key is absent
    result = LostWrites().check(history)
    assert result.verdict is Verdict.FAIL and result.metrics["lost"] >= 1


def test_a_server_that_never_answers_leaves_its_writes_unjudged_after_the_retries() -> None:
    history, back, server = _run(Flaky(keys=frozenset({"k3"}), misses=None), retries=3)
    assert back == ReadBack(attempts=4, unanswered=1) and server.reads["k3"] == 4
    assert LostWrites().check(history).verdict is Verdict.UNKNOWN


def test_no_retry_starts_that_could_not_end_by_the_deadline() -> None:
    # a round takes at most its pause + reads at the stream's rate + timeout (1 s) + 1 s
    never = Flaky(keys=frozenset({"k3"}), misses=None)
    _, back, server = _run(never, deadline_after=0.0)
    assert back.attempts == 1 and server.reads["k3"] == 1
    # 1 s pauses: the first retry fits in 3.6 s (1 + 1 + 1 s from ~0), the second not
    _, back, server = _run(Flaky(keys=frozenset({"k3"}), misses=None), 3.6, pause_s=1.0)
    assert back.attempts == 2 and server.reads["k3"] == 2


def test_reads_made_again_use_the_streams_client_and_count_once_for_availability() -> None:
    class Counting(KVClient):
        calls = 0

        def encode(self, op: Op) -> HttpCall:
            Counting.calls += 1
            return super().encode(op)

    history, back, _ = _run(Flaky(keys=frozenset({"k1", "k4"}), misses=2), client=Counting())
    reads = [op for op in history.operations() if op.f == "read"]
    assert back.attempts == 3 and Counting.calls == len(reads) == 10
    assert len(history.rereads()) == 4  # k1 and k4, twice each
    # the first attempts only: 6 writes and 6 reads, two of which failed
    result = Availability(slo=0.5).check(history)
    assert result.judged == 12 and result.metrics["worst_availability"] == 10 / 12


def test_a_grader_that_judges_availability_on_its_load_alone_counts_no_final_read() -> None:
    """``first_counts=False`` (kv-replicated): the final reads, a burst several times the
    load's rate, collect state; a busy machine made correct services fail a share of them
    (serving 88 % < 90 %: scored 0). Their values are still judged."""
    history, back, _ = _run(Flaky(keys=frozenset({"k1", "k4"}), misses=2), first_counts=False)
    reads = [op for op in history.operations() if op.f == "read"]
    assert back.attempts == 3 and len(history.rereads()) == len(reads) == 10
    result = Availability(slo=0.5, min_ops=1).check(history)
    assert result.judged == 6 and result.metrics["worst_availability"] == 1.0  # the writes
    assert LostWrites().check(history).verdict is Verdict.PASS


def test_unanswered_reads_are_the_latest_read_of_each_pair_since_the_time_given() -> None:
    history, _, _ = _run(Flaky(keys=frozenset({"k5"}), misses=1), retries=0)
    [(target, key)] = unanswered_reads(history, _targets(history), 0.0)
    assert key == "k5"
    end = max(op.complete for op in history.operations())
    assert unanswered_reads(history, [target], end + 1.0) == []


def _targets(history: History) -> list[str]:
    return sorted({f"http://{op.node}" for op in history.operations() if op.node})
