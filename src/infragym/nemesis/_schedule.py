"""Seeded fault schedules: pure data, so the same seed always gives the same schedule.

A schedule is a list of :class:`ScheduledFault` (when, for how long, which fault on which
hosts). Generating it touches no cluster, so it can be printed, stored, compared across
runs and replayed; :mod:`._runner` turns it into real faults.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .._errors import ConfigError
from ._faults import (
    Bandwidth,
    ClockSkew,
    Crash,
    DiskFull,
    Fault,
    FaultSpec,
    PacketLoss,
    Partition,
    Pause,
)

FAULT_KINDS = (
    "crash",
    "pause",
    "partition",
    "loss",
    "bandwidth",
    "latency",
    "disk-full",
    "clock-skew",
)
TOPOLOGIES = ("isolate", "majority", "bridge")


@dataclass(frozen=True)
class ScheduledFault:
    at: float
    duration: float
    spec: FaultSpec
    label: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "duration": self.duration,
            "kind": self.spec.kind,
            "targets": list(self.spec.targets),
            "params": dict(self.spec.params),
            "label": self.label,
        }


@dataclass(frozen=True)
class Schedule:
    faults: tuple[ScheduledFault, ...]
    seed: int | None = None

    @property
    def end(self) -> float:
        return max((f.at + f.duration for f in self.faults), default=0.0)

    def kinds(self) -> set[str]:
        return {f.spec.kind for f in self.faults}

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.faults]

    def compose(self, *others: Schedule) -> Schedule:
        """Merge schedules into one, relabelling so every fault instance stays distinct."""
        merged = [f for s in (self, *others) for f in s.faults]
        merged.sort(key=lambda f: (f.at, f.label))
        out = []
        for i, f in enumerate(merged):
            out.append(replace(f, label=f"{f.spec.kind}-{i + 1}"))
        return Schedule(tuple(out), self.seed)


def _partition_spec(rng: random.Random, hosts: Sequence[str]) -> FaultSpec:
    choices = ["isolate"] + (["majority", "bridge"] if len(hosts) >= 3 else [])
    topo = rng.choice(choices)
    if topo == "isolate":
        victim = rng.choice(list(hosts))
        return FaultSpec("partition", (victim,), (("topology", "isolate"),))
    shuffled = list(hosts)
    rng.shuffle(shuffled)
    return FaultSpec("partition", tuple(shuffled), (("topology", topo),))


def random_schedule(
    seed: int,
    hosts: Sequence[str],
    *,
    kinds: Sequence[str] = ("crash", "pause", "partition"),
    duration: float = 20.0,
    start: float = 2.0,
    fault_duration: tuple[float, float] = (2.0, 4.0),
    gap: tuple[float, float] = (1.0, 2.0),
) -> Schedule:
    """Faults one at a time, separated by quiet gaps, over ``duration`` seconds.

    Only one fault is active at a time, so each availability window measures one fault.
    Compose several schedules to overlap faults.
    """
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ConfigError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    if not kinds:
        raise ConfigError("a schedule needs at least one fault kind")
    if not hosts:
        raise ConfigError("a schedule needs at least one host")
    lo, hi = fault_duration
    glo, ghi = gap
    if not (0 < lo <= hi and 0 <= glo <= ghi and duration > 0):
        raise ConfigError("durations and gaps must be positive with min <= max")
    if len(hosts) < 2:
        # partitions and link latency need a second host to cut or slow a link to
        kinds = [k for k in kinds if k not in ("partition", "latency")]
        if not kinds:
            raise ConfigError("partition and latency faults need at least 2 hosts")
    rng = random.Random(seed)
    out: list[ScheduledFault] = []
    t = start
    i = 0
    while True:
        d = round(rng.uniform(lo, hi), 3)
        if t + d > duration:
            break
        kind = rng.choice(list(kinds))
        victim = rng.choice(list(hosts))
        if kind == "partition":
            spec = _partition_spec(rng, hosts)
        elif kind == "loss":
            spec = FaultSpec(kind, (victim,), (("probability", 0.3),))
        elif kind == "bandwidth":
            spec = FaultSpec(kind, (victim,), (("rate_bps", 1_000_000),))
        elif kind == "latency":
            spec = FaultSpec(kind, (victim,), (("delay_s", 0.1), ("jitter_s", 0.02)))
        elif kind == "clock-skew":
            spec = FaultSpec(kind, (victim,), (("offset_s", rng.choice([-60.0, 60.0])),))
        else:
            spec = FaultSpec(kind, (victim,))
        i += 1
        out.append(ScheduledFault(round(t, 3), d, spec, f"{kind}-{i}"))
        t += d + rng.uniform(glo, ghi)
    return Schedule(tuple(out), seed)


def build_fault(spec: FaultSpec, label: str, hosts: Sequence[str]) -> Fault:
    """Turn a spec into a fault object; unknown kinds and bad targets are ConfigErrors."""
    bad = [t for t in spec.targets if t not in hosts]
    if bad:
        raise ConfigError(f"fault {label}: unknown hosts {bad} (cluster hosts: {list(hosts)})")
    if not spec.targets:
        raise ConfigError(f"fault {label}: no target hosts")
    kind, tg = spec.kind, spec.targets
    if kind == "crash":
        return Crash(tg[0], label)
    if kind == "pause":
        return Pause(tg[0], label)
    if kind == "partition":
        topo = spec.param("topology", "isolate")
        if topo == "isolate":
            return Partition.isolate(tg[0], hosts, label)
        if topo == "majority":
            minority = len(tg) // 2
            return Partition.groups([list(tg[minority:]), list(tg[:minority])], label)
        if topo == "bridge":
            return Partition.bridge(list(tg), label)
        raise ConfigError(
            f"fault {label}: unknown partition topology {topo!r} (known: {', '.join(TOPOLOGIES)})"
        )
    if kind == "loss":
        return PacketLoss(tg, float(spec.param("probability", 0.3)), label)
    if kind == "bandwidth":
        return Bandwidth(tg, int(spec.param("rate_bps", 1_000_000)), label)
    if kind == "disk-full":
        return DiskFull(tg[0], label)
    if kind == "clock-skew":
        return ClockSkew(tg[0], float(spec.param("offset_s", 60.0)), label)
    if kind == "latency":
        from ._latency import Latency

        return Latency(
            tg, float(spec.param("delay_s", 0.1)), float(spec.param("jitter_s", 0.0)), label
        )
    raise ConfigError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
