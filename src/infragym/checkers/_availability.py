"""Availability per fault window, from the times operations were *meant* to start.

Windows are keyed by intended start, not by invocation: a client that stalled during a
fault and only got round to invoking after the heal must not move its request out of the
fault window, or a server that hangs clients would look available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._errors import ConfigError
from ..history import FaultWindow, History, Operation
from ._base import CheckResult, Metric, Verdict

STEADY = "steady"


@dataclass(frozen=True, slots=True)
class _Window:
    label: str
    slo: float
    total: int
    ok: int

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
    ``fail`` answers are legitimate (a cas whose comparison failed).

    Score: the worst judged window's availability divided by its SLO (capped at 1). The
    worst window, not the mean, because averaging lets a long healthy steady state hide a
    system that was down for the whole of one fault, which is the thing being measured.
    """

    slo: float = 0.99
    fault_slo: float | None = None
    min_ops: int = 10
    f: str | None = None
    name: str = "availability"

    def __post_init__(self) -> None:
        for what, v in (("slo", self.slo), ("fault_slo", self.fault_slo)):
            if v is not None and not 0.0 < v <= 1.0:
                raise ConfigError(f"Availability {what}={v} must be in (0, 1], e.g. 0.99")
        if self.min_ops < 1:
            raise ConfigError(f"Availability min_ops={self.min_ops} must be at least 1")

    def check(self, history: History) -> CheckResult:
        ops = [op for op in history.operations() if self.f is None or op.f == self.f]
        if not ops:
            what = "operations" if self.f is None else f"{self.f!r} operations"
            return CheckResult(
                self.name, Verdict.UNKNOWN, 0.0, f"the history has no {what}; nothing to judge"
            )
        windows = self._windows(ops, history.fault_windows())
        return self._judge(windows, ops)

    def _windows(self, ops: list[Operation], faults: list[FaultWindow]) -> list[_Window]:
        fault_slo = self.slo if self.fault_slo is None else self.fault_slo
        out: list[_Window] = []
        seen: dict[str, int] = {STEADY: 1}
        in_fault = [False] * len(ops)
        for w in faults:
            total = ok = 0
            for i, op in enumerate(ops):
                if w.contains(op.intended):
                    in_fault[i] = True
                    total += 1
                    ok += op.ok
            n = seen.get(w.label, 0) + 1
            seen[w.label] = n
            label = w.label if n == 1 else f"{w.label}#{n}"
            out.append(_Window(label, fault_slo, total, ok))
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
            (judged if w.total >= self.min_ops else small).append(w)
        below = [w for w in judged if w.availability < w.slo]
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
                self.name, Verdict.FAIL, score, f"availability below SLO in {detail}", metrics
            )
        if small:
            names = ", ".join(f"{w.label} ({w.total} ops)" for w in small)
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                score,
                f"too few operations to judge window(s) {names}; need at least "
                f"{self.min_ops} each (run the workload longer or at a higher rate)",
                metrics,
            )
        summary = ", ".join(f"{w.label} {w.availability:.2%}" for w in judged)
        return CheckResult(
            self.name, Verdict.PASS, score, f"every window met its SLO: {summary}", metrics
        )
