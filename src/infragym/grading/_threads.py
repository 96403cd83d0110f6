"""Enough threads for the gradings running at once in one event loop.

A grader runs its load, its faults and its deployment checks in threads of the event
loop's default executor (``asyncio.to_thread``), which Python sizes at
``min(32, cpus + 4)``: 6 threads on a 2-core machine. Several gradings in one process
(``rollout_many``) then queue behind each other's load threads: measured, 8 at once wait up
to 21 s for a thread, their nemesis applies its faults that late, and a correct system
scores 0.60. So each grading, while it runs, makes sure the loop's default executor has
:data:`THREADS_PER_GRADING` threads for every grading in progress (beyond Python's own
:data:`BASE_THREADS`): the executor is replaced by a larger one when it is too small (threads
are made only when needed, so an idle one costs nothing; work the old one holds still runs
to its end). Measured, 8 robust kv-replicated gradings at once on 2 cores: no grading
waited over 0.16 s for a thread, no fault was over 0.38 s late.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

BASE_THREADS = 32  # Python's largest default
THREADS_PER_GRADING = 8  # the load, the nemesis, a deployment check per host, the monitor

_active: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()
_sized: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


def ensure_threads(loop: asyncio.AbstractEventLoop, threads: int) -> int:
    """Give ``loop`` a default executor of at least ``threads`` threads (at least doubling
    the one it has); returns its size."""
    # a default executor the caller set (asyncio keeps it unexposed) is kept if big enough
    current = getattr(loop, "_default_executor", None)
    size = max(_sized.get(loop, 0), getattr(current, "_max_workers", 0) if current else 0)
    if size < threads:
        size = max(threads, 2 * size)
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=size, thread_name_prefix="infragym-grading")
        )
        _sized[loop] = size
    return size


@contextlib.contextmanager
def grading_threads() -> Iterator[int]:
    """Count one more grading in the running loop while inside, with threads for it."""
    loop = asyncio.get_running_loop()
    _active[loop] = _active.get(loop, 0) + 1
    try:
        yield ensure_threads(loop, BASE_THREADS + THREADS_PER_GRADING * _active[loop])
    finally:
        _active[loop] -= 1
