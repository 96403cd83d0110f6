"""Failover time: how long after a fault began the service answered at its SLO again.

The time from the fault's start to the start of the first *second* inside its window in
which the operations meant to start then (by intended start) met the window's SLO. The
second is a sliding span that begins at an operation's intended start, so the figure has
the resolution of the load's spacing (0.1 s at 10 requests per second), not of whole
seconds: a service that recovers 2.3 s into the fault, under that load, gets 2.3 s. The
span must lie inside the window, so that the heal cannot pass for a recovery: the last
second of the window is the last span judged (a recovery less than a second before the
heal does not count), and a window shorter than a second is judged as one span over its
whole length. A span must hold at least one operation. A fault the service never
recovered from within its window has no failover time (None); nor has a window without
operations.
"""

from __future__ import annotations

from collections.abc import Sequence

FAILOVER_SPAN_S = 1.0
"""How long the service must answer at its SLO to count as recovered."""


def failover_time(
    start: float, end: float, ops: Sequence[tuple[float, bool]], slo: float
) -> float | None:
    """Seconds from ``start`` to the first span at the SLO; ``ops``: (intended, ok) pairs of
    the operations in the window ``[start, end)``, in any order."""
    if not ops or not end > start:
        return None
    span = min(FAILOVER_SPAN_S, end - start)
    last = end - span  # the latest start of a span that fits in the window
    times = sorted(ops)
    hi = ok = 0
    for lo, (t, _) in enumerate(times):
        s = min(t, last)  # past ``last``: the window's final span, judged once
        while hi < len(times) and times[hi][0] < s + span:
            ok += times[hi][1]
            hi += 1
        if hi > lo and ok / (hi - lo) >= slo:
            return max(0.0, s - start)
        if s < t:
            return None
        ok -= times[lo][1]
    return None
