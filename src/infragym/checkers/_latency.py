"""Latency percentiles measured from each operation's intended start.

Measuring from the intended start (the open-loop schedule) rather than from invocation
avoids coordinated omission: a client stuck behind a slow server invokes late, and only the
intended start charges that wait to the server. Operations whose outcome is unknown
(``info``: a timeout, a dropped connection, never completed) count as infinitely slow;
dropping them would reward a server that hangs on exactly its slowest requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from .._errors import ConfigError
from ..history import History, OpType
from ._base import CheckResult, Metric, Verdict

_CEILING_US = 86_400 * 1_000_000
"""A day, in microseconds: the histogram's top. It stands for "never"; a day or more is
reported as infinite."""

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))


@dataclass(frozen=True)
class Latency:
    """Latency of ``ok`` operations (plus ``info`` ones, as infinite) against targets.

    ``p50`` and ``p99`` are targets in seconds (None = not judged); ``f`` restricts the
    check to one operation kind. ``fail`` operations are left out: the server answered
    them, and whether it should have is Availability's question. Values come from an
    HdrHistogram in microseconds with 3 significant digits, reported as the lower edge of
    their bucket: a figure may read up to 0.1% low, and a latency exactly at its target
    passes. Fewer than ``min_ops`` operations give unknown.

    Score: the product of ``min(1, target / measured)`` over the targets, so 1 when all are
    met and falling with overshoot (twice the target scores 0.5; infinite scores 0).
    """

    p50: float | None = None
    p99: float | None = None
    f: str | None = None
    min_ops: int = 10
    name: str = "latency"

    def __post_init__(self) -> None:
        for what, v in (("p50", self.p50), ("p99", self.p99)):
            if v is not None and not 0.0 < v < math.inf:
                raise ConfigError(f"Latency {what}={v} must be a positive number of seconds")
        if self.min_ops < 1:
            raise ConfigError(f"Latency min_ops={self.min_ops} must be at least 1")

    def check(self, history: History) -> CheckResult:
        ops = [
            op
            for op in history.operations()
            if op.outcome is not OpType.FAIL and (self.f is None or op.f == self.f)
        ]
        what = "operations" if self.f is None else f"{self.f!r} operations"
        if len(ops) < self.min_ops:
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                f"{len(ops)} ok or unknown-outcome {what}; need at least {self.min_ops} "
                "to measure latency",
                {"count": len(ops)},
                judged=len(ops),
            )
        hist = HdrHistogram(1, _CEILING_US, 3)
        never = 0
        for op in ops:
            lat = op.latency
            if op.outcome is OpType.INFO or not lat * 1e6 < _CEILING_US:
                never += 1
                hist.record_value(_CEILING_US)
            else:
                hist.record_value(max(0, round(lat * 1e6)))
        ceiling = hist.get_lowest_equivalent_value(_CEILING_US)

        def seconds(us: int) -> float:
            low = hist.get_lowest_equivalent_value(us)
            return math.inf if low >= ceiling else low / 1e6

        measured = {k: seconds(hist.get_value_at_percentile(p)) for k, p in PERCENTILES}
        metrics: dict[str, Metric] = {f"{k}_s": v for k, v in measured.items()}
        max_s = seconds(hist.get_max_value())
        metrics["max_s"] = max_s
        metrics["count"] = len(ops)
        metrics["unknown_outcome"] = never
        targets = [(k, t) for k, t in (("p50", self.p50), ("p99", self.p99)) if t is not None]
        score = 1.0
        missed: list[str] = []
        for k, t in targets:
            metrics[f"{k}_target_s"] = t
            m = measured[k]
            score *= min(1.0, t / m) if m > 0 else 1.0
            if m > t:
                missed.append(f"{k} {_fmt(m)} > target {_fmt(t)}")
        figures = ", ".join(f"{k} {_fmt(measured[k])}" for k, _ in PERCENTILES)
        figures += f", max {_fmt(max_s)} over {len(ops)} {what}"
        if never:
            figures += f" ({never} never completed, counted as infinite)"
        if missed:
            return CheckResult(
                self.name,
                Verdict.FAIL,
                score,
                f"{'; '.join(missed)} ({figures})",
                metrics,
                judged=len(ops),
            )
        head = "targets met" if targets else "no targets set; measured only"
        return CheckResult(
            self.name, Verdict.PASS, 1.0, f"{head}: {figures}", metrics, judged=len(ops)
        )


def _fmt(s: float) -> str:
    if math.isinf(s):
        return "inf"
    return f"{s * 1000:.1f}ms" if s < 1.0 else f"{s:.3f}s"
