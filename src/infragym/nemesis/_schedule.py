"""Seeded fault schedules: pure data, so the same seed always gives the same schedule.

A schedule is a list of :class:`ScheduledFault` (when, for how long, which fault on which
hosts). Generating it touches no cluster, so it can be printed, stored, compared across
runs and replayed; :mod:`._runner` turns it into real faults.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from .._errors import ConfigError
from ._fault import Fault, FaultSpec
from ._kinds import KINDS
from ._target import MARK, FaultTarget

FAULT_KINDS = tuple(KINDS)
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

    @property
    def last_apply(self) -> float:
        """When the last fault is applied (0 for an empty schedule)."""
        return max((f.at for f in self.faults), default=0.0)

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
    # e.g. partitions and link latency need a second host to cut or slow a link to
    usable = [k for k in kinds if KINDS[k].min_hosts <= len(hosts)]
    if not usable:
        need = min(KINDS[k].min_hosts for k in kinds)
        raise ConfigError(
            f"{' and '.join(dict.fromkeys(kinds))} faults need at least {need} hosts "
            f"(this schedule has {len(hosts)})"
        )
    kinds = usable
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
        spec = KINDS[kind].draw(rng, victim, hosts)
        i += 1
        if i > MAX_FAULTS:
            raise ConfigError(
                f"this schedule would hold more than {MAX_FAULTS} faults; "
                "shorten duration or lengthen fault_duration and gap"
            )
        out.append(ScheduledFault(round(t, 3), d, spec, f"{kind}-{i}"))
        t += d + rng.uniform(glo, ghi)
    return Schedule(tuple(out), seed)


def build_fault(
    spec: FaultSpec,
    label: str,
    hosts: Sequence[str],
    targets: Mapping[str, FaultTarget] | None = None,
) -> Fault:
    """Turn a spec into a fault object; every bad spec is a ConfigError naming the fault.

    Crash, pause, disk-full, clock-skew and an isolating partition act on exactly one host:
    give one fault per host (faults of one kind on one host overlap correctly). That host
    may be ``"@name"``, the fire-time target ``targets[name]`` (:mod:`._target`).
    """
    kind, tg = spec.kind, spec.targets
    if kind not in KINDS:
        raise ConfigError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
    if isinstance(tg, str) or not isinstance(tg, tuple | list):
        raise ConfigError(f"fault {label}: targets must be a list of host names, not {tg!r}")
    fire = [t for t in tg if isinstance(t, str) and t.startswith(MARK)]
    if fire:
        return _build_fired(spec, label, hosts, fire[0][len(MARK) :], targets or {})
    bad = [t for t in tg if t not in hosts]
    if bad:
        raise ConfigError(f"fault {label}: unknown hosts {bad} (cluster hosts: {list(hosts)})")
    if not tg:
        raise ConfigError(f"fault {label}: no target hosts")
    if len(set(tg)) != len(tg):
        raise ConfigError(f"fault {label}: a host is named twice in {list(tg)}")
    params = _params(spec, label)
    k = KINDS[kind]
    if k.one_host(params) and len(tg) != 1:
        raise ConfigError(
            f"fault {label}: {kind} takes exactly one host, not {list(tg)}; give one fault per host"
        )
    return k.build(tuple(tg), params, label, hosts)


def _params(spec: FaultSpec, label: str) -> dict[str, Any]:
    try:
        params = dict(spec.params)
    except (TypeError, ValueError):
        raise ConfigError(
            f"fault {label}: params must be (name, value) pairs, not {spec.params!r}"
        ) from None
    k = KINDS[spec.kind]
    unknown = sorted(set(params) - set(k.params))
    if unknown:
        known = ", ".join(k.params) or "none"
        raise ConfigError(
            f"{spec.kind} fault {label!r}: unknown parameters {unknown} (known: {known})"
        )
    return params


def _build_fired(
    spec: FaultSpec, label: str, hosts: Sequence[str], name: str, targets: Mapping[str, FaultTarget]
) -> Fault:
    """A one-host fault whose host is the fire-time target ``name``."""
    params = _params(spec, label)
    k = KINDS[spec.kind]
    if not k.one_host(params) or len(spec.targets) != 1:
        raise ConfigError(
            f"fault {label}: a fire-time target ({MARK}{name}) is the one host of a crash, "
            f"pause, disk-full, clock-skew or isolating partition, not of {spec.kind} "
            f"{list(spec.targets)}"
        )
    if name not in targets:
        raise ConfigError(
            f"fault {label}: no fire-time target {name!r}: give it to the nemesis "
            f"(Nemesis(..., targets={{{name!r}: FaultTarget(...)}}); it has: "
            f"{', '.join(targets) or 'none'})"
        )
    return k.build(cast(tuple[str, ...], (targets[name],)), params, label, hosts)
