"""The open-loop runner against real servers on 127.0.0.1: schedule, bounds, streams."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from workload_support import (  # the autouse fixture runs each test twice
    KVServer,
    closed_port_url,
    completions,
    drive,
    kv_server,
    never_answer,
    raw_server,
    transport,  # noqa: F401
    well_formed,
)

from infragym import workload
from infragym._errors import ConfigError
from infragym.history import Clock, History, OpType
from infragym.workload import (
    OVERLOADED,
    KVClient,
    KVGenerator,
    Mix,
    RequestGenerator,
    Runner,
    RunSummary,
    Stream,
    final_read_stream,
    run_workload,
)

# -- schedule --------------------------------------------------------------------------


def test_intended_start_times_are_exactly_one_over_rate_apart() -> None:
    async def main() -> History:
        history = History()
        async with kv_server() as (_, url):
            summary = await drive(history, Stream(KVGenerator([url]), rate=250, max_ops=40))
        assert summary.launched == summary.ok == 40
        return history

    history = asyncio.run(main())
    invokes = [e for e in history.ops if e.type is OpType.INVOKE]
    assert [e.id for e in invokes] == list(range(40))
    t0 = invokes[0].intended
    assert t0 is not None
    for i, e in enumerate(invokes):
        intended = e.intended or 0.0
        assert intended == pytest.approx(t0 + i / 250, abs=1e-9)
        assert intended - 1e-6 <= e.time < intended + 0.5


def test_a_saturated_server_does_not_slow_arrivals_and_latency_grows() -> None:
    # The server serves one request at a time, 50 ms each (20/s); load arrives at 50/s.
    # A closed-loop client would slow to 20/s and report ~50 ms latency throughout.
    async def main() -> tuple[History, RunSummary]:
        history = History()
        async with kv_server(KVServer(serial=0.05)) as (_, url):
            gen = KVGenerator([url], mix=Mix(read=1))
            summary = await drive(history, Stream(gen, rate=50, duration=0.6, timeout=5))
        return history, summary

    t = time.monotonic()
    history, summary = asyncio.run(main())
    assert time.monotonic() - t < 5
    assert summary.launched == summary.ok == 30
    ops = history.operations()
    for i, op in enumerate(ops):
        assert op.intended == pytest.approx(ops[0].intended + i / 50, abs=1e-9)
        assert op.invoke - op.intended < 0.25, "an arrival was delayed by the slow server"
    assert ops[0].latency < 0.3
    assert ops[-1].latency > 0.7  # queueing delay is visible from the intended start
    assert ops[-1].latency > ops[len(ops) // 2].latency > ops[0].latency


def test_slow_but_concurrent_server_keeps_every_start_on_time() -> None:
    async def main() -> History:
        history = History()
        async with kv_server(KVServer(delay=0.3)) as (_, url):
            await drive(history, Stream(KVGenerator([url]), rate=100, duration=0.5, timeout=3))
        return history

    t = time.monotonic()
    history = asyncio.run(main())
    assert time.monotonic() - t < 3  # 50 ops * 0.3 s would take 15 s one after another
    ops = history.operations()
    assert len(ops) == 50 and all(op.ok for op in ops)
    assert all(op.invoke - op.intended < 0.25 for op in ops)
    assert all(op.latency >= 0.3 for op in ops)


# -- bounds ----------------------------------------------------------------------------


def test_runner_stops_within_its_bound_against_a_server_that_never_answers() -> None:
    async def main() -> tuple[History, RunSummary, float]:
        history = History()
        async with raw_server(never_answer) as (_, url):
            t = time.monotonic()
            stream = Stream(RequestGenerator([url]), rate=100, duration=0.5, timeout=0.3)
            summary = await drive(history, stream)
            return history, summary, time.monotonic() - t

    history, summary, elapsed = asyncio.run(main())
    assert elapsed < 0.5 + 0.3 + 0.5
    assert summary.launched == summary.info == 50 and summary.unfinished == 0
    assert all(e.error and "timeout" in e.error for e in completions(history))
    well_formed(history)


@pytest.mark.parametrize("drain", [0.0, 0.2])
def test_ops_in_flight_after_the_drain_keep_their_invoke_without_completion(
    drain: float,
) -> None:
    async def main() -> tuple[History, RunSummary, float]:
        history = History()
        async with raw_server(never_answer) as (_, url):
            t = time.monotonic()
            stream = Stream(RequestGenerator([url]), rate=100, duration=0.3, timeout=30)
            summary = await drive(history, stream, drain_timeout=drain)
            return history, summary, time.monotonic() - t

    history, summary, elapsed = asyncio.run(main())
    assert elapsed < 0.3 + drain + 0.5
    assert summary.launched == summary.unfinished == 30
    assert [e.type for e in history.ops] == [OpType.INVOKE] * 30
    ops = history.operations()
    assert all(op.outcome is OpType.INFO and op.error == "never completed" for op in ops)


def test_cancelling_a_run_cancels_its_operations_and_leaves_their_invokes() -> None:
    async def main() -> tuple[History, float, float]:
        history = History()
        clock = Clock()
        async with raw_server(never_answer) as (_, url):
            t = time.monotonic()
            async with Runner(history, clock) as runner:
                stream = Stream(RequestGenerator([url]), rate=100, duration=30, timeout=30)
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(runner.run(stream), 0.3)
                cancelled_at = clock.now()
                left = [t for t in asyncio.all_tasks() if "_perform" in repr(t.get_coro())]
                assert not left
            return history, cancelled_at, time.monotonic() - t

    history, cancelled_at, elapsed = asyncio.run(main())
    assert elapsed < 1.5
    assert {e.type for e in history.ops} == {OpType.INVOKE}
    # Open loop at 100/s: one invoke per 10 ms of schedule up to the cancellation (a loop
    # stalled by a busy machine launches its backlog late, never past the cancellation).
    assert len(history.ops) >= 20
    assert len(history.ops) <= 100 * cancelled_at + 1
    assert all(e.time <= cancelled_at and (e.intended or 0) <= cancelled_at for e in history.ops)


def test_beyond_max_in_flight_ops_fail_as_client_overloaded_without_being_sent() -> None:
    async def main() -> tuple[History, RunSummary, int]:
        history = History()
        async with raw_server(never_answer) as (accepted, url):
            stream = Stream(RequestGenerator([url]), rate=200, max_ops=20, timeout=0.5)
            summary = await drive(history, stream, max_in_flight=3)
            return history, summary, accepted[0]

    history, summary, accepted = asyncio.run(main())
    assert accepted == 3
    assert summary.launched == 20 and summary.overloaded == 17
    assert summary.fail == 17 and summary.info == 3
    pairs = well_formed(history)
    overloaded = [(i, d) for i, d in pairs.values() if d is not None and d.error == OVERLOADED]
    assert len(overloaded) == 17
    for inv, done in overloaded:
        assert done.type is OpType.FAIL and done.time == inv.time
        assert inv.intended is not None and inv.time >= inv.intended


# -- several streams, ids, persistence -------------------------------------------------


def test_concurrent_streams_share_one_history_with_unique_ids() -> None:
    async def main() -> History:
        history = History()
        async with kv_server() as (_, url1), kv_server() as (_, url2):
            targets = {"n1": url1, "n2": url2}
            writes = KVGenerator(targets, seed=1, mix=Mix(write=1), name="w")
            reads = KVGenerator(targets, seed=2, mix=Mix(read=1), name="r")
            async with Runner(history, Clock()) as runner:
                await runner.run(
                    Stream(writes, rate=200, max_ops=30),
                    Stream(reads, rate=100, max_ops=15, start=0.05),
                )
                with pytest.raises(ConfigError, match="distinct name"):
                    await runner.run(Stream(writes, rate=10, max_ops=1))
                await runner.final_read(targets)
        return history

    history = asyncio.run(main())
    pairs = well_formed(history)
    assert sorted(pairs) == list(range(len(pairs)))
    invokes = [inv for inv, _ in pairs.values()]
    keys = sorted({e.key or "" for e in invokes if e.f == "write"})
    run1, final = invokes[: -2 * len(keys)], invokes[-2 * len(keys) :]
    w = [e.intended or 0.0 for e in run1 if e.f == "write"]
    r = [e.intended or 0.0 for e in run1 if e.f == "read"]
    assert len(w) == 30 and len(r) == 15
    assert r[0] == pytest.approx(w[0] + 0.05, abs=1e-9)
    assert [e.node for e in run1 if e.f == "write"][:4] == ["n1", "n2", "n1", "n2"]
    assert [m["name"] for m in history.meta["workload"]] == ["w", "r", "final-read"]
    assert {e.f for e in final} == {"read"}
    assert sorted((e.key or "", e.node or "") for e in final) == [
        (k, n) for k in keys for n in ("n1", "n2")
    ]


def test_same_seed_same_operations_in_the_history() -> None:
    def sequence(seed: int) -> list[tuple[object, ...]]:
        async def main() -> History:
            history = History()
            async with kv_server() as (_, url1), kv_server() as (_, url2):
                gen = KVGenerator(
                    {"a": url1, "b": url2}, seed=seed, mix=Mix(1, 1, 1), choice="random"
                )
                await drive(history, Stream(gen, rate=500, max_ops=60))
            return history

        history = asyncio.run(main())
        return [(e.id, e.f, e.key, e.value, e.node) for e in history.ops if e.type == "invoke"]

    first = sequence(11)
    assert first == sequence(11)
    assert first != sequence(12)


def test_history_written_as_jsonl_round_trips(tmp_path: Path) -> None:
    async def main() -> History:
        history = History(meta={"episode": 1})
        async with kv_server(KVServer(store={"k1": "x"})) as (_, url):
            gen = KVGenerator([url, closed_port_url()], seed=5, mix=Mix(1, 1, 1), keys=2)
            await drive(history, Stream(gen, rate=300, max_ops=40))
        return history

    history = asyncio.run(main())
    path = history.write_jsonl(tmp_path / "history.jsonl")
    back = History.read_jsonl(path)
    assert sorted(back.ops, key=lambda e: (e.time, e.id)) == sorted(
        history.ops, key=lambda e: (e.time, e.id)
    )
    assert back.operations() == sorted(history.operations(), key=lambda o: o.id)
    assert back.meta == json.loads(json.dumps(history.meta))
    assert {e.type for e in back.ops} >= {OpType.OK, OpType.FAIL}


def test_run_workload_from_sync_code_and_final_read_stream_names() -> None:
    history = History()
    url = closed_port_url()
    gen = KVGenerator([url], mix=Mix(write=1))
    summary = run_workload(history, Clock(), Stream(gen, rate=200, max_ops=5))
    assert summary.fail == 5
    first = final_read_stream(history, [url])
    assert first.name == "final-read" and first.max_ops == len({e.key for e in history.ops})
    run_workload(history, Clock(), first)
    assert final_read_stream(history, [url]).name == "final-read-2"
    ids = [e.id for e in history.ops if e.type is OpType.INVOKE]
    assert ids == list(range(len(ids)))  # a second runner continues the ids


def test_a_client_that_cannot_perform_the_ops_stops_the_run() -> None:
    url = closed_port_url()
    stream = Stream(RequestGenerator([url]), rate=100, duration=5, client=KVClient())
    t = time.monotonic()
    with pytest.raises(ConfigError, match="KVClient"):
        run_workload(History(), Clock(), stream)
    assert time.monotonic() - t < 1


def test_dunder_all_is_the_public_api() -> None:
    names = workload.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(workload, name) is not None
    public = {n for n in vars(workload) if not n.startswith("_")}
    assert public == set(names)


def test_a_run_given_an_instant_counts_from_it_and_records_a_late_start_as_late() -> None:
    """A load started in step with a nemesis gets the same instant: its intended starts lie
    on that instant's grid, and a runner that got going after it records its first
    operations as late (the health check's late starts) instead of shifting the load."""

    async def main(ahead: float) -> tuple[float, History]:
        history, clock = History(), Clock()
        async with kv_server() as (_, url), Runner(history, clock) as runner:
            at = clock.now() + ahead
            await runner.run(Stream(KVGenerator([url]), rate=100, max_ops=10), at=at)
        return at, history

    for ahead in (0.2, -0.5):
        at, history = asyncio.run(main(ahead))
        invokes = [e for e in history.ops if e.type is OpType.INVOKE]
        assert [e.intended for e in invokes] == pytest.approx([at + i / 100 for i in range(10)])
        lag = invokes[0].time - at
        if ahead > 0:
            assert 0 <= lag < 0.3, lag
        else:
            assert lag >= 0.5, lag  # started half a second after its instant: late
