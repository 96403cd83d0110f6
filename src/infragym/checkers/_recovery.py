"""How fast the service as a whole serves again after each heal.

Inside a fault window a one-host service is down by definition (its host is crashed or
paused), and :class:`~infragym.checkers.Availability` with ``exclude_faulted`` has nothing
left to judge there. What such a service owes is to come back: this checker measures, for
each healed fault, the seconds from the heal to the completion of the first successful
operation meant to start after it (and before the next fault), and passes when every heal
was followed by service within ``within_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..history import History
from ._base import CheckResult, Metric, Verdict


@dataclass(frozen=True)
class Recovery:
    """Seconds from each heal to service again (``recovery.<label>_s``, None when nothing
    succeeded before the next fault or the end); ``recovery_max_s`` the largest. ``ops``
    limits the operations that count to those whose ``f`` is listed (all when empty)."""

    within_s: float = 3.0
    ops: tuple[str, ...] = ()
    name: str = "recovery"

    def check(self, history: History) -> CheckResult:
        done = sorted(
            (op.intended, op.complete)
            for op in history.operations()
            if op.ok and (not self.ops or op.f in self.ops)
        )
        windows = sorted(
            (w for w in history.fault_windows() if math.isfinite(w.end)), key=lambda w: w.start
        )
        if not windows:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no fault was healed", judged=0)
        starts = sorted(w.start for w in history.fault_windows())
        metrics: dict[str, Metric] = {}
        figures: list[float] = []
        late: list[str] = []
        for w in windows:
            until = min((s for s in starts if s > w.end), default=math.inf)
            after = [c for i, c in done if w.end <= i < until]
            took = min(after) - w.end if after else None
            metrics[f"recovery.{w.label}_s"] = took
            figures.append(math.inf if took is None else took)
            if took is None or took > self.within_s:
                late.append(f"{w.label} " + ("never" if took is None else f"{took:.2f} s"))
        worst = max(figures)
        metrics["recovery_max_s"] = worst if math.isfinite(worst) else None
        shown = ", ".join(
            f"{w.label} {'never' if math.isinf(f) else f'{f:.2f} s'}"
            for w, f in zip(windows, figures, strict=True)
        )
        if late:
            return CheckResult(
                self.name,
                Verdict.FAIL,
                0.0,
                f"not serving within {self.within_s:g} s of the heal: {', '.join(late)} "
                f"(all: {shown})",
                metrics,
                judged=len(windows),
            )
        return CheckResult(
            self.name,
            Verdict.PASS,
            1.0,
            f"served again within {self.within_s:g} s of every heal: {shown}",
            metrics,
            judged=len(windows),
        )
