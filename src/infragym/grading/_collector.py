"""Python's cyclic garbage collector, kept out of the gradings' load windows.

Gradings run their clients and their nemesis in this process's event loop. A full
collection stops the whole process for as long as it takes to scan every tracked object:
about 0.1 s per million objects here (2 M objects: 0.17 s), and a long-lived process (a
test session, a trainer) holds millions. A CI run saw three gradings at once freeze for
0.46 s at the same instant with the CPU idle (the late starts of every one of them within
the same 0.5 s), which cost one robust grading 0.053 of its reward.

While any grading runs, :func:`quiet_collector` moves every object that exists when a
grading starts into the collector's permanent generation (:func:`gc.freeze`), so the
collections during the load scan only what the gradings themselves made; when the last
grading ends, the frozen objects are handed back (:func:`gc.unfreeze`) for the next
collection. Cyclic garbage frozen meanwhile waits until then; where gradings overlap
without a break for ``MAX_FROZEN_S`` the objects are handed back at the next grading's end
anyway, so that memory stays bounded.

:data:`PAUSES` keeps the recent collections' (monotonic start, seconds), which the health
check reports for its load window.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_FROZEN_S = 600.0
PAUSES: deque[tuple[float, float]] = deque(maxlen=4096)

_lock = threading.Lock()  # gradings may run in several threads' event loops (serve)
_active = 0
_frozen_since: float | None = None
_started: float | None = None


def _timed(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.monotonic()
    elif _started is not None:
        PAUSES.append((_started, time.monotonic() - _started))
        _started = None


@contextmanager
def quiet_collector() -> Iterator[None]:
    """Inside, full collections skip what existed when the grading started."""
    global _active, _frozen_since
    with _lock:
        if _active == 0:
            gc.callbacks.append(_timed)
        _active += 1
        gc.freeze()
        if _frozen_since is None:
            _frozen_since = time.monotonic()
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.callbacks.remove(_timed)
            if _active == 0 or time.monotonic() - (_frozen_since or 0.0) > MAX_FROZEN_S:
                gc.unfreeze()
                _frozen_since = None


def longest_pause(start: float, end: float) -> float | None:
    """The longest collection that overlapped ``[start, end]`` (monotonic), if any."""
    hits = [s for t, s in PAUSES if t <= end and t + s >= start]
    return max(hits) if hits else None
