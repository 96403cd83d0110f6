"""Availability per fault window, from the times operations were *meant* to start.

Windows are keyed by intended start, not by invocation: a client that stalled during a
fault and only got round to invoking after the heal must not move its request out of the
fault window, or a server that hangs clients would look available. An operation answered
(``ok`` or ``fail``) only after its fault window's heal was either held through the heal
(it waited over ``held_s`` from when it was sent: a single point of failure whose clients
wait out a short pause gets its answers just after the heal, inside the clients' timeout)
and is a failure of the window, whatever the answer; or it was sent in the window's last
moments (or late, by a stalled client) and answered promptly, by a healed system, and is
not judged in the window. A service therefore gains nothing by holding a request it
cannot serve until the heal rather than failing it fast.
One with no answer (``info``: a timeout) counts against the window as before.

With ``exclude_faulted`` a window judges only the hosts its fault left healthy: the
targets of a crash or pause, and the hosts a partition cut off from the largest group of
hosts that can all reach one another, are not held to the SLO while the fault lasts. A
system that stays consistent (CP) cannot serve on a minority; it must serve on the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .._errors import ConfigError
from ..history import FaultAction, FaultEvent, FaultWindow, History, Operation
from ._base import CheckResult, Metric, Verdict
from ._failover import FAILOVER_SPAN_S, failover_time

STEADY = "steady"
Scope = Literal["all", "steady", "faults"]
SCOPES: tuple[str, ...] = get_args(Scope)


@dataclass(frozen=True, slots=True)
class _Window:
    label: str
    slo: float
    total: int
    ok: int
    excluded: int = 0
    after_heal: int = 0
    held: int = 0
    failover: float | None = None
    length: float = math.inf

    @property
    def availability(self) -> float:
        return self.ok / self.total if self.total else math.nan


@dataclass(frozen=True)
class Availability:
    """Fraction of operations answered ``ok``, in each fault window and in steady state.

    ``slo`` applies to the fault-free remainder ("steady": before the first fault, between
    faults, after the last heal) and, unless ``fault_slo`` is given, to every fault window
    too; a CP system may reasonably be held to a lower ``fault_slo`` during a partition.
    ``fail`` and ``info`` (unknown outcome) operations both count as unavailable: the
    client did not get an answer it could use. A window with fewer than ``min_ops``
    operations is too small to judge and makes the verdict unknown (unless another window
    fails outright); a steady state with no operations at all is simply absent. ``f``
    restricts the check to one operation kind (e.g. ``read``), which matters when some
    ``fail`` answers are legitimate (a cas whose comparison failed). Final reads made
    again because the first got no answer (``History.rereads``) are not counted: the first
    attempt is the availability evidence, the others only collect state.

    ``exclude_faulted`` (default off) ignores, inside each fault window, the operations
    sent to a host the fault took away (by the operation's ``node``, so targets must be
    named by host): the target of a ``crash`` or ``pause``; for a ``partition``, every
    host outside the largest group of hosts that can all reach one another, computed from
    the apply event's ``detail["blocked"]`` (host -> hosts it cannot reach). Hosts absent
    from that map reach everyone and are never excluded; when several groups are largest,
    the one whose sorted host names come first is kept and the others are excluded. A
    host linked to the kept group only through another host (the ends of a bridge) is
    excluded too: whether a quorum system can serve there depends on its design, so it
    is not judged. Other fault kinds, and a partition whose apply recorded no ``blocked``
    map, exclude nothing. Excluded operations still count as "in a fault" (they are not
    steady state), and each window reports how many it ignored (``window.<label>.excluded``).
    An operation answered only after its window's heal is a failure of the window if it
    waited over ``held_s`` (held through the heal), else not judged in it (see the module
    doc); each fault window reports how many of each (``window.<label>.held``,
    ``window.<label>.after_heal``).

    ``scope`` picks the windows judged: ``all`` (default), ``steady`` (only the fault-free
    remainder: "does the service serve at all when nothing is wrong", a gate that a
    service refusing everything cannot pass vacuously) or ``faults`` (only the fault
    windows, e.g. a low floor on the healthy hosts that a single point of failure misses).
    A scope with no window at all is unknown.

    Failover time, for the single-point-of-failure question (a fault sweep): each fault
    window reports ``window.<label>.failover_s``, the seconds from the fault's start to the
    first second inside the window in which the operations it judges met its SLO (see
    :mod:`._failover`; resolution: the load's spacing), or None when the service never
    recovered within the window (or the window had no operations); ``failover_max_s`` is
    the largest figure and ``windows_not_recovered`` counts the windows with operations
    but no recovery. The explanation gives each window's figure. They are measurements:
    they do not change the verdict or the score.

    Score: the worst judged window's availability divided by its SLO (capped at 1). The
    worst window, not the mean, because averaging lets a long healthy steady state hide a
    system that was down for the whole of one fault, which is the thing being measured.
    ``judged``: the operations in the judged windows (excluded ones not counted).
    """

    slo: float = 0.99
    fault_slo: float | None = None
    min_ops: int = 10
    f: str | None = None
    name: str = "availability"
    exclude_faulted: bool = False
    scope: Scope = "all"
    held_s: float = 0.25

    def __post_init__(self) -> None:
        for what, v in (("slo", self.slo), ("fault_slo", self.fault_slo)):
            if v is not None and not 0.0 < v <= 1.0:
                raise ConfigError(f"Availability {what}={v} must be in (0, 1], e.g. 0.99")
        if self.min_ops < 1:
            raise ConfigError(f"Availability min_ops={self.min_ops} must be at least 1")
        if self.scope not in SCOPES:
            raise ConfigError(
                f"Availability scope={self.scope!r} is not one of {', '.join(SCOPES)}"
            )

    def check(self, history: History) -> CheckResult:
        again = history.rereads()  # final reads made again: state, not availability
        ops = [
            op
            for op in history.operations()
            if (self.f is None or op.f == self.f) and op.id not in again
        ]
        if not ops:
            what = "operations" if self.f is None else f"{self.f!r} operations"
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                f"the history has no {what}; nothing to judge",
                judged=0,
            )
        windows = self._windows(ops, history.fault_windows(), history.faults)
        if self.scope != "all":
            windows = [w for w in windows if (w.label == STEADY) == (self.scope == STEADY)]
        if not windows:
            what = "steady-state operations" if self.scope == STEADY else "fault windows"
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                f"the history has no {what}; scope {self.scope!r} has nothing to judge",
                {"ops": len(ops), "windows": 0},
                judged=0,
            )
        return self._judge(windows, ops)

    def _windows(
        self, ops: list[Operation], faults: list[FaultWindow], events: Iterable[FaultEvent]
    ) -> list[_Window]:
        fault_slo = self.slo if self.fault_slo is None else self.fault_slo
        details = {(e.label, e.time): e.detail for e in events if e.action is FaultAction.APPLY}
        out: list[_Window] = []
        seen: dict[str, int] = {STEADY: 1}
        in_fault = [False] * len(ops)
        for w in faults:
            skip = (
                faulted_hosts(w.fault, w.targets, details.get((w.label, w.start), {}))
                if self.exclude_faulted
                else frozenset()
            )
            total = ok = excluded = after_heal = held = 0
            judged: list[tuple[float, bool]] = []
            for i, op in enumerate(ops):
                if w.contains(op.intended):
                    in_fault[i] = True
                    if op.node is not None and op.node in skip:
                        excluded += 1
                        continue
                    served = op.ok
                    if op.definite and op.complete >= w.end:  # answered once healed
                        # how long the service held it: from when it was sent, so a
                        # client that started late (a stalled harness) is not a hold
                        if op.complete - max(op.invoke, op.intended) <= self.held_s:
                            after_heal += 1  # a prompt answer of the healed system
                            continue
                        held += 1
                        served = False  # held through the heal: not served in the fault
                    total += 1
                    ok += served
                    judged.append((op.intended, served))
            n = seen.get(w.label, 0) + 1
            seen[w.label] = n
            label = w.label if n == 1 else f"{w.label}#{n}"
            failover = failover_time(w.start, w.end, judged, fault_slo)
            length = w.end - w.start
            out.append(
                _Window(label, fault_slo, total, ok, excluded, after_heal, held, failover, length)
            )
        steady = [op for op, f in zip(ops, in_fault, strict=True) if not f]
        if steady:
            out.insert(0, _Window(STEADY, self.slo, len(steady), sum(op.ok for op in steady)))
        return out

    def _judge(self, windows: list[_Window], ops: list[Operation]) -> CheckResult:
        metrics: dict[str, Metric] = {
            "ops": len(ops),
            "ok": sum(op.ok for op in ops),
            "availability": sum(op.ok for op in ops) / len(ops),
            "windows": len(windows),
        }
        judged: list[_Window] = []
        small: list[_Window] = []
        for w in windows:
            p = f"window.{w.label}."
            metrics[p + "total"] = w.total
            metrics[p + "ok"] = w.ok
            metrics[p + "slo"] = w.slo
            metrics[p + "availability"] = None if w.total == 0 else w.availability
            if self.exclude_faulted and w.label != STEADY:
                metrics[p + "excluded"] = w.excluded
            if w.label != STEADY:
                metrics[p + "after_heal"] = w.after_heal
                metrics[p + "held"] = w.held
                metrics[p + "failover_s"] = w.failover
            (judged if w.total >= self.min_ops else small).append(w)
        faults = [w for w in windows if w.label != STEADY]
        recovered = [w.failover for w in faults if w.failover is not None]
        if faults:
            metrics["failover_max_s"] = max(recovered) if recovered else None
            metrics["windows_not_recovered"] = sum(
                w.failover is None and w.total > 0 for w in faults
            )
        note = _failover_note(faults)
        below = [w for w in judged if w.availability < w.slo]
        n = sum(w.total for w in judged)
        metrics["windows_judged"] = len(judged)
        metrics["windows_below_slo"] = len(below)
        metrics["windows_too_small"] = len(small)
        if judged:
            worst = min(judged, key=lambda w: (w.availability / w.slo, w.label))
            metrics["worst_window"] = worst.label
            metrics["worst_availability"] = worst.availability
            score = min(1.0, worst.availability / worst.slo)
        else:
            score = 0.0
        if below:
            detail = "; ".join(
                f"{w.label}: {w.ok}/{w.total} ok = {w.availability:.2%} < SLO {w.slo:.2%}"
                for w in below
            )
            return CheckResult(
                self.name,
                Verdict.FAIL,
                score,
                f"availability below SLO in {detail}{note}",
                metrics,
                judged=n,
            )
        if small:
            names = ", ".join(f"{w.label} ({w.total} ops)" for w in small)
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                score,
                f"too few operations to judge window(s) {names}; need at least "
                f"{self.min_ops} each (run the workload longer or at a higher rate){note}",
                metrics,
                judged=n,
            )
        summary = ", ".join(f"{w.label} {w.availability:.2%}" for w in judged)
        return CheckResult(
            self.name,
            Verdict.PASS,
            score,
            f"every window met its SLO: {summary}{note}",
            metrics,
            judged=n,
        )


def _failover_note(faults: list[_Window]) -> str:
    """The explanation's failover part: every fault window's figure, or why it has none."""
    if not faults:
        return ""
    parts = []
    for w in faults:
        if w.failover is not None:
            parts.append(f"{w.label} {w.failover:.2f} s")
        elif w.total == 0:
            parts.append(f"{w.label} unknown (no operations)")
        else:
            parts.append(f"{w.label} never recovered within its {w.length:.2f} s window")
    head = f"failover (fault start to the first {FAILOVER_SPAN_S:g} s at the SLO)"
    return f"; {head}: {', '.join(parts)}"


def faulted_hosts(kind: str, targets: Iterable[str], detail: Mapping[str, Any]) -> frozenset[str]:
    """The hosts a fault took away, for ``Availability(exclude_faulted=True)``."""
    if kind in ("crash", "pause"):
        return frozenset(targets)
    if kind != "partition":
        return frozenset()
    blocked = detail.get("blocked")
    if not isinstance(blocked, Mapping):
        return frozenset()
    cut: dict[str, set[str]] = {}
    for a, bs in blocked.items():
        for b in bs if isinstance(bs, Iterable) and not isinstance(bs, str) else ():
            if a != b:
                cut.setdefault(str(a), set()).add(str(b))
                cut.setdefault(str(b), set()).add(str(a))
    hosts = frozenset(cut)
    if not hosts:
        return frozenset()
    kept = min(_maximal_groups(hosts, cut), key=lambda g: (-len(g), sorted(g)))
    return hosts - kept


def _maximal_groups(hosts: frozenset[str], cut: Mapping[str, set[str]]) -> list[frozenset[str]]:
    """Every maximal set of hosts that can all reach one another (Bron-Kerbosch, pivoted)."""
    reach = {h: hosts - cut.get(h, set()) - {h} for h in hosts}
    found: list[frozenset[str]] = []

    def expand(group: frozenset[str], cand: frozenset[str], done: frozenset[str]) -> None:
        if not cand and not done:
            found.append(group)
            return
        pivot = max(cand | done, key=lambda h: (len(reach[h] & cand), h))
        for h in sorted(cand - reach[pivot]):
            expand(group | {h}, cand & reach[h], done & reach[h])
            cand = cand - {h}
            done = done | {h}

    expand(frozenset(), hosts, frozenset())
    return found
