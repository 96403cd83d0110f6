"""The open-loop runner: operations start on schedule, whatever the server does.

A closed-loop client waits for each answer before sending the next request, so a stalled
server also stalls the load and the stall vanishes from the latency figures (coordinated
omission). Here operation ``i`` of a stream is *intended* to start at ``start + i / rate``
and is launched as its own task at that time; the invoke records both the intended and the
actual start, and latency is measured from the intended one.

Backpressure is explicit, never hidden: when ``max_in_flight`` operations are already
outstanding, a due operation is recorded at once as an invoke plus a ``fail`` with error
``"client overloaded"`` (it was never sent), instead of being skipped or delayed.

The run stops by itself: the schedule is bounded by each stream's duration and count,
every operation by its timeout, and the final drain by ``drain_timeout``; operations still
in flight after the drain are cancelled and keep their invoke without a completion, which
``pair_operations`` reads as ``info``.

What is recorded is bounded whatever the service answers: values as
``history.stored_value`` keeps them (long or non-UTF-8 ones as a digest), error texts cut
to ``MAX_ERROR_CHARS``.

Several streams run against one history through one scheduler that merges them by intended
time, so operation ids (and with them the whole op sequence) are the same on every run.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .._errors import ConfigError
from ..history import Clock, History, OpEvent, OpType, stored_value
from ._generators import FinalReads, Rereads, keys_written
from ._outcome import MAX_ERROR_CHARS, OVERLOADED, error_result
from ._spec import Client, Op, Result, Stream, Target, TargetsLike, parse_targets
from ._transport import TransportName, make_transport

META_KEY = "workload"
DEFAULT_TRANSPORT: TransportName = "aiohttp"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Counts of one ``run``.

    ``overloaded`` ops are also counted in ``fail``; ``unfinished`` ops were still in flight
    when the drain ended and have no completion (they count in neither ok, fail nor info).
    """

    launched: int
    ok: int
    fail: int
    info: int
    overloaded: int
    unfinished: int
    elapsed: float


@dataclass(slots=True)
class _Plan:
    stream: Stream
    client: Client
    ops: Iterator[Op]
    count: int
    base: float
    connect_timeout: float


class Runner:
    """Drives streams against HTTP services and records every operation in ``history``.

    Use it as ``async with Runner(history, clock) as runner: await runner.run(...)``; the
    context owns the one HTTP session. ``clock`` must be the clock the nemesis stamps its
    events with. One runner per history at a time: ids continue from the history's
    largest, and stream names must be new to the history (they prefix written values).

    ``transport`` picks the HTTP client: ``"aiohttp"`` (the default, the most forgiving
    parser of odd servers) or ``"lean"`` (``_lean``: about twice the sustained rate per
    core); both follow the same outcome rules.
    """

    def __init__(
        self,
        history: History,
        clock: Clock,
        *,
        max_in_flight: int = 1000,
        drain_timeout: float | None = None,
        transport: TransportName | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if drain_timeout is not None and drain_timeout < 0:
            raise ConfigError(f"drain_timeout must be >= 0 seconds, got {drain_timeout}")
        self.history = history
        self.clock = clock
        self.max_in_flight = max_in_flight
        self.drain_timeout = drain_timeout
        self.transport: TransportName = transport or DEFAULT_TRANSPORT
        self._transport = make_transport(self.transport, max_in_flight)
        self._next_id = 0
        self._in_flight = 0
        self._counts: Counter[OpType] = Counter()
        self._error: BaseException | None = None
        self._open = False
        self._running = False

    async def __aenter__(self) -> Runner:
        await self._transport.open()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        await self._transport.close()

    async def run(self, *streams: Stream, at: float | None = None) -> RunSummary:
        """Run the streams concurrently until all are done; returns when drained.

        The streams' times count from ``at`` on the runner's clock (default: now). A run
        meant to start in step with something else (a nemesis's schedule) passes the same
        instant to both; if the runner gets going only after ``at``, its first operations
        start late and are recorded so (their intended starts stay on ``at``'s grid)."""
        if not self._open:
            raise RuntimeError("use the Runner as `async with Runner(...) as runner`")
        if self._running:
            raise RuntimeError("a Runner runs one run() at a time; pass all streams to it")
        self._register(streams)
        self._next_id = max(self._next_id, max((e.id for e in self.history.ops), default=-1) + 1)
        self._running = True
        try:
            return await self._run(streams, at)
        finally:
            self._running = False

    async def _run(self, streams: Sequence[Stream], at: float | None) -> RunSummary:
        self._counts.clear()
        self._error = None
        t0 = self.clock.now() if at is None else at
        plans = [
            _Plan(
                s,
                s.resolved_client(),
                iter(s.generator.ops()),
                s.count,
                t0 + s.start,
                s.timeout / 2,
            )
            for s in streams
        ]
        tasks: set[asyncio.Task[None]] = set()
        try:
            launched, overloaded = await self._schedule(plans, tasks)
            # Tasks start in creation order, so after one turn of the loop every launched
            # operation has recorded its invoke and none can vanish if cancelled below.
            await asyncio.sleep(0)
            unfinished = await self._drain(tasks, max(s.timeout for s in streams))
        finally:
            await _cancel(tasks)  # only if run() itself was cancelled or failed
        if self._error is not None:
            raise self._error
        counts = self._counts
        return RunSummary(
            launched=launched,
            ok=counts[OpType.OK],
            fail=counts[OpType.FAIL],
            info=counts[OpType.INFO],
            overloaded=overloaded,
            unfinished=unfinished,
            elapsed=self.clock.now() - t0,
        )

    async def _schedule(
        self, plans: list[_Plan], tasks: set[asyncio.Task[None]]
    ) -> tuple[int, int]:
        """Launch every operation at its intended time; returns (launched, overloaded)."""
        heap = [(p.base, idx, 0) for idx, p in enumerate(plans) if p.count > 0]
        heapq.heapify(heap)
        launched = overloaded = 0
        while heap and self._error is None:
            intended, idx, i = heap[0]
            delay = intended - self.clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            heapq.heappop(heap)
            plan = plans[idx]
            op = next(plan.ops, None)
            if op is None:
                continue
            if i + 1 < plan.count:
                heapq.heappush(heap, (plan.base + (i + 1) / plan.stream.rate, idx, i + 1))
            op_id = self._next_id
            self._next_id += 1
            launched += 1
            if self._in_flight >= self.max_in_flight:
                overloaded += 1
                self._overloaded(op_id, op, intended)
                continue
            self._in_flight += 1
            task = asyncio.create_task(self._perform(op_id, op, intended, plan))
            tasks.add(task)
            task.add_done_callback(self._done(tasks))
        return launched, overloaded

    async def final_read(
        self, targets: TargetsLike, *, rate: float = 200.0, timeout: float = 2.0
    ) -> RunSummary:
        """Read every key written so far on every target (run it after the final heal)."""
        return await self.run(final_read_stream(self.history, targets, rate=rate, timeout=timeout))

    # -- internals -----------------------------------------------------------------------

    def _register(self, streams: Sequence[Stream]) -> None:
        if not streams:
            raise ConfigError("run() needs at least one stream")
        meta: list[dict[str, Any]] = self.history.meta.setdefault(META_KEY, [])
        used = {m.get("name") for m in meta}
        names = [s.name for s in streams]
        for name in names:
            if name in used or names.count(name) > 1:
                raise ConfigError(
                    f"stream name {name!r} is already used in this history; give each "
                    "stream a distinct name (written values are prefixed with it)"
                )
        for s in streams:
            gen = s.generator
            meta.append(
                {
                    "name": s.name,
                    "generator": type(gen).__name__,
                    "seed": getattr(gen, "seed", None),
                    "rate": s.rate,
                    "duration": s.duration,
                    "max_ops": s.max_ops,
                    "timeout": s.timeout,
                    "start": s.start,
                }
            )

    def _done(self, tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None and self._error is None:
                self._error = task.exception()

        return done

    def _overloaded(self, op_id: int, op: Op, intended: float) -> None:
        now = self.clock.now()
        node = op.target.node
        value = stored_value(op.value)
        self.history.append(OpEvent(OpType.INVOKE, op_id, op.f, now, op.key, value, intended, node))
        self.history.append(
            OpEvent(OpType.FAIL, op_id, op.f, now, op.key, value, None, node, OVERLOADED)
        )
        self._counts[OpType.FAIL] += 1

    async def _perform(self, op_id: int, op: Op, intended: float, plan: _Plan) -> None:
        try:
            call = plan.client.encode(op)
            node = op.target.node
            hist, clock = self.history, self.clock
            value = stored_value(op.value)
            hist.append(
                OpEvent(OpType.INVOKE, op_id, op.f, clock.now(), op.key, value, intended, node)
            )
            timeout = plan.stream.timeout
            try:
                async with asyncio.timeout(timeout):
                    status, body = await self._transport.request(
                        op.target.url, call, plan.connect_timeout
                    )
            except Exception as exc:  # cancellation (a BaseException) is not an outcome
                result = error_result(exc, timeout, op.f)
            else:
                result = plan.client.decode(op, status, body)
            self._complete(op_id, op, node, result, value)
        finally:
            self._in_flight -= 1

    def _complete(self, op_id: int, op: Op, node: str, result: Result, value: Any) -> None:
        """Record the completion; ``value`` is the operation's value as stored."""
        if result.value is not None or op.f == "read":
            value = stored_value(result.value)
        error = result.error
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 3] + "..."
        self.history.append(
            OpEvent(result.type, op_id, op.f, self.clock.now(), op.key, value, None, node, error)
        )
        self._counts[result.type] += 1

    async def _drain(self, tasks: set[asyncio.Task[None]], op_timeout: float) -> int:
        if not tasks:
            return 0
        limit = self.drain_timeout if self.drain_timeout is not None else op_timeout + 1.0
        _, pending = await asyncio.wait(set(tasks), timeout=limit)
        await _cancel(pending)
        return len(pending)


async def _cancel(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def final_read_stream(
    history: History,
    targets: TargetsLike,
    *,
    rate: float = 200.0,
    timeout: float = 2.0,
    keys: Iterable[str] | None = None,
    spread: Iterable[str] = (),
) -> Stream:
    """A stream reading every key written in ``history`` (or ``keys``) on every target
    (those in ``spread`` once each, on the targets in turn: see :class:`FinalReads`).

    Its name is ``final-read``, or ``final-read-2``... when the history already has one.
    """
    gen = FinalReads(
        targets,
        keys_written(history) if keys is None else keys,
        name=_new_name(history, "final-read"),
        spread=spread,
    )
    return Stream(gen, rate=rate, max_ops=gen.count, timeout=timeout)


def _new_name(history: History, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... the first no stream of ``history`` has."""
    used = {m.get("name") for m in history.meta.get(META_KEY, [])}
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}-{n}"
    return name


def unanswered_reads(
    history: History, targets: TargetsLike, since: float
) -> list[tuple[Target, str]]:
    """The ``(target, key)`` pairs of ``targets`` read at or after ``since`` (history time)
    whose latest such read did not complete ``ok``, in the order first read."""
    by_node = {t.node: t for t in parse_targets(targets)}
    latest: dict[tuple[str, str], bool] = {}
    for op in history.operations():
        if op.f == "read" and op.invoke >= since and op.key is not None and op.node in by_node:
            pair = (op.node, op.key)
            latest[pair] = op.ok  # operations() is in invocation order: the latest wins
    return [(by_node[node], key) for (node, key), ok in latest.items() if not ok]


@dataclass(frozen=True)
class ReadBack:
    """What :func:`read_back` did: ``attempts`` rounds of reads (the first included) and
    the ``(target, key)`` pairs still ``unanswered`` after the last."""

    attempts: int
    unanswered: int


async def read_back(
    history: History,
    clock: Clock,
    stream: Stream,
    targets: TargetsLike,
    *,
    retries: int = 2,
    pause_s: float = 1.0,
    deadline: float | None = None,
    transport: TransportName | None = None,
    first_counts: bool = True,
) -> ReadBack:
    """Run the final reads ``stream`` against ``targets``, then read again, up to
    ``retries`` times after ``pause_s`` each, every ``(target, key)`` whose read got no
    answer (failed, timed out), with the stream's client; no round starts unless it can
    end by ``deadline`` (``clock`` time), through ``transport`` (the runner's default if
    None).

    The final read phase collects the state the run left, not availability (judged while
    the load ran): a server that was briefly too slow to answer a final read (a starved
    machine, a leader still settling) would otherwise leave a write unjudged, and a lost
    write still reads as missing however often it is read. Every attempt is recorded; the
    reads made again are marked in the history (:meth:`History.mark_rereads`) so that
    availability counts only the first; with ``first_counts=False`` the first are marked
    too, and availability is judged on the load alone (a burst of final reads, several
    times the load's rate, is no measure of the service's promise on a busy machine).
    """
    since = clock.now()
    attempts = 1
    async with Runner(history, clock, transport=transport) as runner:
        first = len(history.ops)
        await runner.run(stream)
        if not first_counts:
            history.mark_rereads(e.id for e in history.ops[first:] if e.type is OpType.INVOKE)
        left = unanswered_reads(history, targets, since)
        for _ in range(retries):
            longest = pause_s + len(left) / stream.rate + stream.timeout + 1.0
            if not left or (deadline is not None and clock.now() + longest > deadline):
                break
            await asyncio.sleep(pause_s)
            gen = Rereads(tuple(left), name=_new_name(history, "final-read"))
            first = len(history.ops)
            await runner.run(
                Stream(gen, rate=stream.rate, max_ops=gen.count, timeout=stream.timeout,
                       client=stream.client)
            )  # fmt: skip
            history.mark_rereads(e.id for e in history.ops[first:] if e.type is OpType.INVOKE)
            attempts += 1
            left = unanswered_reads(history, targets, since)
    return ReadBack(attempts, len(left))


def run_workload(
    history: History,
    clock: Clock,
    *streams: Stream,
    max_in_flight: int = 1000,
    drain_timeout: float | None = None,
    transport: TransportName | None = None,
) -> RunSummary:
    """Run streams to completion from synchronous code (starts its own event loop)."""

    async def main() -> RunSummary:
        async with Runner(
            history,
            clock,
            max_in_flight=max_in_flight,
            drain_timeout=drain_timeout,
            transport=transport,
        ) as runner:
            return await runner.run(*streams)

    return asyncio.run(main())
