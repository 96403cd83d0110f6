"""A balanced fault schedule: rounds of fault kinds, one fault at a time with quiet gaps,
every host taken away at least once.

Where :func:`~._schedule.random_schedule` draws each fault independently, a balanced
schedule gives every run the same faults in a seeded order, so every seed measures the
same properties (and a task's rewards spread little across seeds), and it takes every host
away (crashes, pauses or cuts it off) at least once, so no seed spares the one host a
single point of failure lives on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .._errors import ConfigError
from ._fault import FaultSpec
from ._kinds import KINDS, TOPOLOGIES
from ._schedule import Schedule, ScheduledFault

__all__ = ["balanced_schedule", "taken_away"]

TAKES_AWAY = ("crash", "pause")
"""Kinds that take their one target away (a partition may too, by its topology)."""


def taken_away(kind: str, topology: str, hosts: int) -> int:
    """How many hosts one fault takes away by its victims: a crash, a pause or an isolating
    partition one, a majority partition on an odd number of hosts its minority (``hosts //
    2``), and none for certain a bridge, an even split (which half is judged taken away is
    the checker's choice, by name) or a fault that only degrades a host (latency, ...)."""
    if kind in TAKES_AWAY or (kind == "partition" and topology == "isolate"):
        return 1
    if kind == "partition" and topology == "majority" and hosts % 2 == 1:
        return hosts // 2
    return 0


def balanced_schedule(
    seed: int,
    hosts: Sequence[str],
    *,
    kinds: Sequence[str] = ("crash", "pause", "partition"),
    rounds: int = 2,
    first_at: float = 2.0,
    duration: tuple[float, float] = (1.8, 2.6),
    gap: tuple[float, float] = (0.8, 1.2),
    topologies: Sequence[str] = TOPOLOGIES,
    distinct: Sequence[str] = ("crash",),
    salt: str = "",
) -> Schedule:
    """``rounds`` rounds, each every kind of ``kinds`` once in a seeded order, one fault at
    a time: the first at ``first_at`` seconds, each lasting a draw from ``duration`` and
    followed by a quiet gap drawn from ``gap``, so each availability window measures one
    fault.

    Every host is taken away at least once (bridges become isolations if needed; a
    ConfigError when the faults are too few to do it), and the faults of a kind in
    ``distinct`` (crashes, by default) hit a different host each, so data must survive on
    disk, not only in a peer's memory. A partition's topology is drawn from
    ``topologies``. A pure function of ``seed``, ``salt`` (a task's name: two tasks draw
    different schedules from one seed) and the arguments.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown fault kinds {unknown} (known: {', '.join(KINDS)})")
    if not kinds or rounds < 1 or not hosts:
        raise ConfigError("a balanced schedule needs at least one kind, round and host")
    bad = [t for t in topologies if t not in TOPOLOGIES]
    if bad or not topologies:
        raise ConfigError(f"unknown partition topologies {bad} (known: {', '.join(TOPOLOGIES)})")
    hosts = list(hosts)
    rng = random.Random(f"{salt}/{seed}")
    order: list[str] = []
    for _ in range(rounds):
        round_ = list(kinds)
        rng.shuffle(round_)
        order += round_
    topos = [rng.choice(list(topologies)) if k == "partition" else "" for k in order]
    victims = _victims(rng, order, topos, hosts, set(distinct))
    faults: list[ScheduledFault] = []
    t = first_at
    for i, kind in enumerate(order):
        length = round(rng.uniform(*duration), 3)
        if kind != "partition":
            spec = KINDS[kind].draw(rng, victims[i][0], hosts)
        elif topos[i] == "isolate":
            spec = FaultSpec("partition", (victims[i][0],), (("topology", "isolate"),))
        else:
            rest = [h for h in hosts if h not in victims[i]]
            rng.shuffle(rest)
            # majority: the first len//2 hosts are the minority, cut off from the rest
            spec = FaultSpec("partition", (*victims[i], *rest), (("topology", topos[i]),))
        faults.append(ScheduledFault(round(t, 3), length, spec, f"{kind}-{i + 1}"))
        t += length + rng.uniform(*gap)
    return Schedule(tuple(faults), seed)


def _victims(
    rng: random.Random,
    kinds: list[str],
    topologies: list[str],
    hosts: list[str],
    distinct: set[str],
) -> list[tuple[str, ...]]:
    """Each fault's victims (a bridge's only fix its order), covering every host.

    Every host is first given one victim slot, the remaining slots are drawn at random,
    and no two faults of a ``distinct`` kind hit the same host.
    """
    sizes = [taken_away(k, t, len(hosts)) for k, t in zip(kinds, topologies, strict=True)]
    for i, t in enumerate(topologies):
        if t in ("bridge", "majority") and sizes[i] == 0 and sum(sizes) < len(hosts):
            topologies[i] = "isolate"
            sizes[i] = 1
    if sum(sizes) < len(hosts):
        raise ConfigError(
            f"{len(kinds)} faults ({', '.join(sorted(set(kinds)))}) cannot take away each of "
            f"{len(hosts)} hosts: give more rounds or more crash, pause or partition kinds"
        )
    units = [i for i, n in enumerate(sizes) for _ in range(n)]
    rng.shuffle(units)
    picked: list[list[str]] = [[] for _ in kinds]
    order = list(hosts)
    rng.shuffle(order)
    for slot, host in zip(units, order, strict=False):
        picked[slot].append(host)
    used = {k: {h for i, kk in enumerate(kinds) if kk == k for h in picked[i]} for k in distinct}
    for slot in units[len(order) :]:
        kind = kinds[slot]
        taken = set(picked[slot]) | used.get(kind, set())
        free = [h for h in hosts if h not in taken]
        if not free:
            raise ConfigError(
                f"more {kind} faults than hosts for each to hit a different one ({len(hosts)})"
            )
        host = rng.choice(free)
        picked[slot].append(host)
        if kind in used:
            used[kind].add(host)
    for i, t in enumerate(topologies):
        if t == "bridge":
            picked[i] = [rng.choice(hosts)]
    for i, n in enumerate(sizes):
        if n == 0 and kinds[i] != "partition":
            picked[i] = [rng.choice(hosts)]
    return [tuple(p) for p in picked]
