"""The fault sweep: every component failed in turn, for "is there a single point of failure?".

A sweep is a stock :class:`~._schedule.Schedule`: for each kind in order (by default each
host crashed, then each paused, then each isolated), each host in the order given, one
fault at a time, ``fault_s`` long, with ``gap_s`` of quiet between two faults (the first
starts at ``start``). So every host gets every kind, no two faults overlap, and a host
has ``len(hosts) - 1`` other faults' worth of time to recover before its next one. Pure
data and fully deterministic (no seed): the same arguments always give the same schedule,
whose length is known in advance (:func:`sweep_length`). Each fault is labelled
``<kind>-<host>`` (``isolate-<host>`` for the isolating partition), which is also how the
availability checker names its window.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from .._errors import ConfigError
from ._fault import FaultSpec
from ._kinds import KINDS
from ._schedule import MAX_FAULTS, MIN_FAULT_S, Schedule, ScheduledFault

SWEEP_KINDS = ("crash", "pause", "partition")
"""The default sweep: each host crashed, then each paused, then each isolated."""


def sweep_length(n_hosts: int, n_kinds: int, fault_s: float, gap_s: float, start: float) -> float:
    """When a sweep of ``n_hosts * n_kinds`` faults ends (the last heal)."""
    n = n_hosts * n_kinds
    return start + n * fault_s + max(0, n - 1) * gap_s if n else 0.0


def _spec(kind: str, host: str, hosts: Sequence[str]) -> FaultSpec:
    if kind == "partition":
        return FaultSpec("partition", (host,), (("topology", "isolate"),))
    # the kind's stock spec on this one host; a fixed rng, so the sweep has no seed
    return KINDS[kind].draw(random.Random(0), host, hosts)


def sweep_schedule(
    hosts: Sequence[str],
    *,
    kinds: Sequence[str] = SWEEP_KINDS,
    fault_s: float = 4.0,
    gap_s: float = 4.0,
    start: float = 2.0,
) -> Schedule:
    """Every host failed by every kind in turn, one fault at a time with quiet gaps.

    ``kinds`` run in the order given, each over every host in the order given; a partition
    isolates its host from all others. Every bad argument is a ConfigError: no or repeated
    hosts or kinds, an unknown kind, one that needs more hosts than there are (isolating
    a host needs a second one), ``fault_s`` under 10 ms, a negative ``gap_s`` or
    ``start``, numbers that are not finite, or more than ``MAX_FAULTS`` faults.
    """
    hosts, kinds = list(hosts), list(kinds)
    if not hosts or not kinds:
        raise ConfigError("a sweep needs at least one host and one fault kind")
    for what, names in (("host", hosts), ("fault kind", kinds)):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"a sweep names the {what}s {twice} more than once")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown fault kinds {unknown}; known: {', '.join(KINDS)}")
    short = [k for k in kinds if KINDS[k].min_hosts > len(hosts)]
    if short:
        raise ConfigError(
            f"{', '.join(short)} faults need at least {KINDS[short[0]].min_hosts} hosts; "
            f"this sweep has {len(hosts)}: leave {', '.join(short)} out of kinds"
        )
    try:
        fault_s, gap_s, start = float(fault_s), float(gap_s), float(start)
    except (TypeError, ValueError):
        raise ConfigError(
            f"fault_s, gap_s and start must be numbers (got {fault_s!r}, {gap_s!r}, {start!r})"
        ) from None
    if not all(math.isfinite(x) for x in (fault_s, gap_s, start)):
        raise ConfigError("a sweep's fault_s, gap_s and start must be finite numbers")
    if fault_s < MIN_FAULT_S or gap_s < 0 or start < 0:
        raise ConfigError(
            f"a sweep needs fault_s >= {MIN_FAULT_S} s, gap_s >= 0 and start >= 0 "
            f"(got fault_s={fault_s}, gap_s={gap_s}, start={start})"
        )
    if len(hosts) * len(kinds) > MAX_FAULTS:
        raise ConfigError(
            f"a sweep of {len(kinds)} kinds over {len(hosts)} hosts would hold more than "
            f"{MAX_FAULTS} faults"
        )
    out: list[ScheduledFault] = []
    for kind in kinds:
        name = "isolate" if kind == "partition" else kind
        for host in hosts:
            at = start + len(out) * (fault_s + gap_s)
            out.append(ScheduledFault(at, fault_s, _spec(kind, host, hosts), f"{name}-{host}"))
    return Schedule(tuple(out))
