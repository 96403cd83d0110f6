"""Seeded fault schedules: pure data, so the same seed always gives the same schedule.

A schedule is a list of :class:`ScheduledFault` (when, for how long, which fault on which
hosts). Generating it touches no cluster, so it can be printed, stored, compared across
runs and replayed; :mod:`._runner` turns it into real faults.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .._errors import ConfigError
from ._clock_skew import ClockSkew
from ._disk_full import DiskFull
from ._fault import Fault, FaultSpec
from ._network_faults import Bandwidth, PacketLoss, Partition
from ._process_faults import Crash, Pause

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
MAX_FAULTS = 10_000
"""A schedule holds at most this many faults (a bound on memory and on run time)."""
MIN_FAULT_S = 0.01
"""The shortest fault a random schedule makes (after rounding to the millisecond)."""


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
    Compose several schedules to overlap faults. Every number must be finite, faults last
    at least 10 ms, and a schedule holds at most ``MAX_FAULTS`` faults.
    """
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ConfigError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    if not kinds:
        raise ConfigError("a schedule needs at least one fault kind")
    if not hosts:
        raise ConfigError("a schedule needs at least one host")
    try:
        lo, hi = (float(x) for x in fault_duration)
        glo, ghi = (float(x) for x in gap)
        duration, start = float(duration), float(start)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            "duration and start must be numbers, fault_duration and gap (min, max) pairs "
            f"of numbers (got duration={duration!r}, start={start!r}, "
            f"fault_duration={fault_duration!r}, gap={gap!r})"
        ) from None
    if not all(math.isfinite(x) for x in (lo, hi, glo, ghi, duration, start)):
        raise ConfigError("schedule durations, gaps and start must be finite numbers")
    if not (MIN_FAULT_S <= lo <= hi and 0 <= glo <= ghi and duration > 0 and start >= 0):
        raise ConfigError(
            f"a schedule needs {MIN_FAULT_S} s <= fault_duration min <= max, "
            "0 <= gap min <= max, duration > 0 and start >= 0 "
            f"(got fault_duration={fault_duration}, gap={gap}, duration={duration}, "
            f"start={start})"
        )
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
        if i > MAX_FAULTS:
            raise ConfigError(
                f"this schedule would hold more than {MAX_FAULTS} faults; "
                "shorten duration or lengthen fault_duration and gap"
            )
        out.append(ScheduledFault(round(t, 3), d, spec, f"{kind}-{i}"))
        t += d + rng.uniform(glo, ghi)
    return Schedule(tuple(out), seed)


_PARAMS: dict[str, tuple[str, ...]] = {
    "crash": (),
    "pause": (),
    "partition": ("topology",),
    "loss": ("probability",),
    "bandwidth": ("rate_bps",),
    "latency": ("delay_s", "jitter_s", "include_client"),
    "disk-full": (),
    "clock-skew": ("offset_s",),
}
SINGLE_HOST = ("crash", "pause", "disk-full", "clock-skew")


def build_fault(spec: FaultSpec, label: str, hosts: Sequence[str]) -> Fault:
    """Turn a spec into a fault object; every bad spec is a ConfigError naming the fault.

    Crash, pause, disk-full, clock-skew and an isolating partition act on exactly one host:
    give one fault per host (faults of one kind on one host overlap correctly).
    """
    kind, tg = spec.kind, spec.targets
    if kind not in _PARAMS:
        raise ConfigError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
    if isinstance(tg, str) or not isinstance(tg, tuple | list):
        raise ConfigError(f"fault {label}: targets must be a list of host names, not {tg!r}")
    bad = [t for t in tg if t not in hosts]
    if bad:
        raise ConfigError(f"fault {label}: unknown hosts {bad} (cluster hosts: {list(hosts)})")
    if not tg:
        raise ConfigError(f"fault {label}: no target hosts")
    if len(set(tg)) != len(tg):
        raise ConfigError(f"fault {label}: a host is named twice in {list(tg)}")
    try:
        params = dict(spec.params)
    except (TypeError, ValueError):
        raise ConfigError(
            f"fault {label}: params must be (name, value) pairs, not {spec.params!r}"
        ) from None
    unknown = sorted(set(params) - set(_PARAMS[kind]))
    if unknown:
        known = ", ".join(_PARAMS[kind]) or "none"
        raise ConfigError(f"{kind} fault {label!r}: unknown parameters {unknown} (known: {known})")
    single = kind in SINGLE_HOST or (
        kind == "partition" and params.get("topology") in (None, "isolate")
    )
    if single and len(tg) != 1:
        raise ConfigError(
            f"fault {label}: {kind} takes exactly one host, not {list(tg)}; give one fault per host"
        )
    if kind == "crash":
        return Crash(tg[0], label)
    if kind == "pause":
        return Pause(tg[0], label)
    if kind == "partition":
        topo = params.get("topology", "isolate")
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
        return PacketLoss(tg, params.get("probability", 0.3), label)
    if kind == "bandwidth":
        return Bandwidth(tg, params.get("rate_bps", 1_000_000), label)
    if kind == "disk-full":
        return DiskFull(tg[0], label)
    if kind == "clock-skew":
        return ClockSkew(tg[0], params.get("offset_s", 60.0), label)
    from ._latency import Latency

    include_client = params.get("include_client", False)
    if not isinstance(include_client, bool):
        raise ConfigError(
            f"latency fault {label!r}: include_client must be true or false, not {include_client!r}"
        )
    return Latency(
        tg,
        params.get("delay_s", 0.1),
        params.get("jitter_s", 0.0),
        label,
        include_client=include_client,
    )
