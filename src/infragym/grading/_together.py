"""Load and faults from one instant: :func:`load_under_faults`.

Started each "now" on its own, a load and a fault schedule drift apart on a busy machine:
the nemesis checks its tools first (seconds when other gradings hold the cores) and the
load's thread opens its client first, so the last fault could fall after the load ended
and its window hold a handful of operations (measured: correct services scored 0.25 with
every health figure calm). Here the nemesis's checks run first
(:meth:`~infragym.nemesis.Nemesis.prepare`), the load opens its client in the cluster's
client thread and says it is ready, and only then is one instant set, ``lead_s`` ahead,
from which both count. A side that still starts late is late against that instant, which
the health check's late starts and fault lag see.

While the load runs, the graded hosts weigh ``LOAD_SHARES`` (4x the default) against
other runs' hosts under the cpu controller: a grading whose availability is being
measured gets the CPU before gradings that are building hosts, starting services,
testing, reading back or checking, none of which is timed to the millisecond. Measured
(48 kv-replicated episodes at 16 at once, robust-async, the same session): the rewards'
paired mean rose by 0.005 (standard error 0.002) and those under 0.97 fell from 6 to 1.
The weight is relative to other runs only: the group of every run's hosts keeps its
weight against the grading process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Awaitable, Callable, Iterator

from ..history import Clock
from ..nemesis import Nemesis, Schedule
from ..sandbox import Cluster

__all__ = ["START_LEAD_S", "START_WAIT_S", "StartAt", "load_under_faults", "measured"]

START_LEAD_S = 0.5  # from "both ready" to the shared instant: room for the load's thread
START_WAIT_S = 60.0  # the load's client waits this long at most for the shared start
LOAD_SHARES = 4096  # cpu.shares of the graded hosts while their load runs (default 1024)
DEFAULT_SHARES = 1024

StartAt = Callable[[], Awaitable[float]]
"""Given to the load: awaited once its client is open; returns the instant to count from."""


@contextlib.contextmanager
def measured(cluster: Cluster) -> Iterator[None]:
    """While inside, ``cluster``'s hosts weigh ``LOAD_SHARES`` against other runs' (see
    the module doc); the default again on the way out, whatever ended it. Wrap what a
    grader times (its load, its probes), not its set-up or checks."""
    cluster.set_cpu_shares(LOAD_SHARES)
    try:
        yield
    finally:
        cluster.set_cpu_shares(DEFAULT_SHARES)


async def load_under_faults(
    cluster: Cluster,
    nemesis: Nemesis,
    schedule: Schedule,
    clock: Clock,
    load: Callable[[StartAt], Awaitable[None]],
    lead_s: float = START_LEAD_S,
) -> None:
    """Run ``load`` in ``cluster``'s client thread and ``schedule`` on ``nemesis``, both
    counting from one instant of ``clock``.

    ``load(start_at)`` opens its client, then ``at = await start_at()`` and starts its
    streams at ``at`` (``Runner.run(..., at=at)``). The faults start at the same ``at``.
    While both run, ``cluster``'s hosts weigh ``LOAD_SHARES`` against other runs' (see
    the module doc), and the default again after. A load that fails before it is ready
    plays no fault, and one that ends without awaiting ``start_at`` is an error (its
    grading would have played none). The load's exception, else the nemesis's, is raised
    once both have ended (the nemesis heals what it injected on exit of its context,
    which the caller holds).
    """
    await nemesis.prepare(schedule)
    ready: concurrent.futures.Future[None] = concurrent.futures.Future()
    start: concurrent.futures.Future[float] = concurrent.futures.Future()

    async def start_at() -> float:
        ready.set_result(None)
        return await asyncio.wait_for(asyncio.wrap_future(start), START_WAIT_S)

    loading = asyncio.ensure_future(asyncio.to_thread(cluster.run_client, lambda: load(start_at)))
    waiting = asyncio.ensure_future(asyncio.wrap_future(ready))
    outcomes: list[object]
    try:
        await asyncio.wait([loading, waiting], return_when=asyncio.FIRST_COMPLETED)
        if loading.done():  # it failed (or ended) before it was ready: no faults to play
            outcomes = [
                loading.exception()
                or RuntimeError(
                    "the load ended without awaiting start_at(): it must open its client, "
                    "then start its streams at `await start_at()` (no fault was played)"
                )
            ]
        elif not start.set_running_or_notify_cancel():  # its wait gave up (or was cancelled)
            outcomes = list(await asyncio.gather(loading, return_exceptions=True))
        else:
            with measured(cluster):  # weighted before the load is let go
                at = clock.now() + lead_s
                start.set_result(at)
                outcomes = list(
                    await asyncio.gather(
                        loading, nemesis.run(schedule, at=at), return_exceptions=True
                    )
                )
    finally:
        waiting.cancel()
        if not start.done():  # interrupted: the load's thread must not wait on
            start.set_exception(RuntimeError("the grading stopped before its load"))
    for o in outcomes:
        if isinstance(o, BaseException):
            raise o
