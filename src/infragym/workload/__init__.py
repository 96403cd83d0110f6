"""Workload: open-loop HTTP clients that record every operation into a history.

A :class:`Stream` pairs a seeded generator with an arrival rate; a :class:`Runner` starts
each operation at its intended time (no coordinated omission) and records an invoke and a
completion (``ok`` / ``fail`` / ``info``) on the run's shared clock. How responses and
errors map to outcomes is tabled in ``_outcome``; the key-value HTTP API that tasks ask
agents to implement is in ``_clients``::

    PUT /kv/{key} (raw body)  GET /kv/{key} (200 value | 404)  POST /kv/{key}/cas (200 | 409)

Requests go through one keep-alive client per runner: aiohttp by default, or with
``Runner(..., transport="lean")`` a lean asyncio HTTP/1.1 client that sustains about twice
the rate per core (``benchmarks/bench_workload.py``); both obey the same outcome rules,
and neither reads a response body over ``MAX_BODY_BYTES`` (1 MiB). The history keeps every
value bounded (``history.stored_value``: long or non-UTF-8 values as a digest), so a
service cannot grow the grading process with what it answers.

Minimal use::

    async with Runner(history, clock) as runner:
        await runner.run(Stream(KVGenerator(targets, seed=1), rate=200, duration=30))
        await runner.final_read(targets)
"""

from ._clients import KVClient, RequestClient
from ._generators import (
    FinalReads,
    KVGenerator,
    Mix,
    RequestGenerator,
    Rereads,
    WriteOnce,
    keys_written,
)
from ._outcome import MAX_BODY_BYTES, OVERLOADED, BodyTooLarge, status_outcome, status_result
from ._runner import (
    ReadBack,
    Runner,
    RunSummary,
    final_read_stream,
    read_back,
    run_workload,
    unanswered_reads,
)
from ._spec import Client, Generator, HttpCall, Op, Result, Stream, Target, parse_targets
from ._transport import TransportName, read_body

__all__ = [
    "MAX_BODY_BYTES",
    "OVERLOADED",
    "BodyTooLarge",
    "Client",
    "FinalReads",
    "Generator",
    "HttpCall",
    "KVClient",
    "KVGenerator",
    "Mix",
    "Op",
    "ReadBack",
    "RequestClient",
    "RequestGenerator",
    "Rereads",
    "Result",
    "RunSummary",
    "Runner",
    "Stream",
    "Target",
    "TransportName",
    "WriteOnce",
    "final_read_stream",
    "keys_written",
    "parse_targets",
    "read_back",
    "read_body",
    "run_workload",
    "status_outcome",
    "status_result",
    "unanswered_reads",
]
