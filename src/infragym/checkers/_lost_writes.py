"""Acknowledged writes that did not survive the run, judged by the final read phase."""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Hashable
from dataclasses import dataclass

from .._errors import ConfigError
from ..history import History, Operation
from ._base import CheckResult, Metric, Verdict
from ._register import (
    READ,
    describe,
    final_phase_start,
    freeze,
    may_have_written,
    register_ops,
    split_by_key,
    written,
)


@dataclass(frozen=True)
class LostWrites:
    """Lost acknowledged writes of a key-value register (``write``, ``read``, ``cas``).

    Definitions, for one key:

    - A *final read* is an ``ok`` read invoked at or after the final phase start: the last
      fault heal plus ``settle_s`` (any read, if the history has no faults). A fault that
      was never healed leaves no final phase, so the verdict is unknown.
    - A write ``w`` is *acknowledged* if it (or a cas) completed ``ok``.
    - A write ``w'`` *could follow* ``w`` if it may have taken effect (``ok`` or ``info``,
      not ``fail``) and did not complete before ``w`` was invoked; a final read ``r`` can
      observe ``w'`` only if ``w'`` was invoked no later than ``r`` completed (operations
      that touch in time are concurrent, as in Linearizable).
    - ``w`` is *judged* if some final read was invoked after ``w`` completed: such a read
      must, in any correct history, return ``w``'s value or a value of a write that could
      follow ``w``.
    - ``w`` is **lost** if it is judged and no final read invoked after ``w`` completed
      returns ``w``'s value or the value of a write that could follow ``w``. Reading
      ``None`` (key absent) after an acknowledged write is the plainest case.

    Values must be unique per key (the workloads guarantee it); with duplicates the check
    is still sound (it may miss a loss, never invent one). "No final read saw it" is the
    lenient reading on purpose: a single stale read during recovery is StaleReads'
    business, while a loss here means the data is gone from every view observed.

    Verdict: fail if any write is lost; unknown if some acknowledged write is unjudged
    (a server that errors on final reads of keys it dropped cannot pass by silence) or
    no write was acknowledged. Score: the fraction of acknowledged writes shown to survive;
    ``judged``: the acknowledged writes with a final read after them, counting only keys
    matching the regular expression ``counted`` when it is given. Every key is checked for
    losses either way; ``counted`` names the keys whose writes are real evidence (write-once
    keys: an overwritten key's earlier writes are vouched for by any later one), so a
    rubric's ``min_judged`` cannot be met by overwrites alone.
    """

    settle_s: float = 0.0
    name: str = "lost-writes"
    counted: str | None = None

    def __post_init__(self) -> None:
        if not self.settle_s >= 0.0:
            raise ConfigError(f"LostWrites settle_s={self.settle_s} must be >= 0 seconds")
        if self.counted is not None:
            try:
                re.compile(self.counted)
            except re.error as exc:
                raise ConfigError(f"LostWrites counted={self.counted!r}: {exc}") from exc

    def _counts(self, op: Operation) -> bool:
        return self.counted is None or re.fullmatch(self.counted, str(op.key)) is not None

    def check(self, history: History) -> CheckResult:
        ops, ignored = register_ops(history)
        metrics: dict[str, Metric] = {"ignored_ops": ignored}
        acked_all = [op for op in ops if op.ok and op.f != READ]
        metrics["acknowledged"] = len(acked_all)
        if not acked_all:
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                "no write was acknowledged, so no write can be shown lost or kept",
                metrics,
                judged=0,
            )
        start, problem = final_phase_start(history, self.settle_s)
        metrics["final_phase_start"] = start
        if problem is not None:
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                f"{problem}, so there is no final read phase to judge writes by",
                metrics,
                judged=0,
            )
        lost: list[tuple[Operation, list[Operation]]] = []
        unjudged: list[Operation] = []
        final_reads = 0
        for group in split_by_key(ops):
            finals = sorted(
                (op for op in group.ops if op.f == READ and op.ok and op.invoke >= start),
                key=lambda op: op.invoke,
            )
            final_reads += len(finals)
            k_lost, k_unjudged = _judge_key(group.ops, finals)
            lost.extend(k_lost)
            unjudged.extend(k_unjudged)
        acked = len(acked_all)
        judged = sum(map(self._counts, acked_all)) - sum(map(self._counts, unjudged))
        metrics["final_reads"] = final_reads
        metrics["lost"] = len(lost)
        metrics["unjudged"] = len(unjudged)
        metrics["survived"] = acked - len(lost) - len(unjudged)
        score = (acked - len(lost) - len(unjudged)) / acked
        if lost:
            shown = "; ".join(
                f"key {w.key!r}: {describe(w)}, final reads returned "
                f"{sorted({repr(r.result) for r in rs})}"
                for w, rs in lost[:5]
            )
            more = f" (and {len(lost) - 5} more)" if len(lost) > 5 else ""
            metrics["witness"] = shown
            return CheckResult(
                self.name,
                Verdict.FAIL,
                score,
                f"{len(lost)} of {acked} acknowledged writes lost: {shown}{more}",
                metrics,
                judged=judged,
            )
        if unjudged:
            keys = sorted({repr(w.key) for w in unjudged})
            shown_keys = ", ".join(keys[:10]) + (" ..." if len(keys) > 10 else "")
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                score,
                f"{len(unjudged)} of {acked} acknowledged writes have no ok final read after "
                f"them (keys {shown_keys}); the final read phase must read every written key",
                metrics,
                judged=judged,
            )
        return CheckResult(
            self.name,
            Verdict.PASS,
            1.0,
            f"all {acked} acknowledged writes survived ({final_reads} final reads)",
            metrics,
            judged=judged,
        )


def _judge_key(
    ops: tuple[Operation, ...], finals: list[Operation]
) -> tuple[list[tuple[Operation, list[Operation]]], list[Operation]]:
    """Lost and unjudged acknowledged writes of one key.

    A final read ``r`` returning ``v`` vouches for every acknowledged write ``w`` with
    ``w.complete < r.invoke`` and ``w.invoke <= reach(r)``, where ``reach(r)`` is the
    latest completion of a write of ``v`` invoked by the time ``r`` completed (``w`` itself, or
    a write that could follow it). Suffix maxima of ``reach`` over reads sorted by
    invocation make each write a binary search.
    """
    writers: dict[Hashable, list[Operation]] = {}
    for op in ops:
        if may_have_written(op):
            writers.setdefault(written(op), []).append(op)
    reach = [
        max(
            (w.complete for w in writers.get(freeze(r.result), ()) if w.invoke <= r.complete),
            default=-math.inf,
        )
        for r in finals
    ]
    suffix = reach[:]
    for i in range(len(suffix) - 2, -1, -1):
        suffix[i] = max(suffix[i], suffix[i + 1])
    invokes = [r.invoke for r in finals]
    lost: list[tuple[Operation, list[Operation]]] = []
    unjudged: list[Operation] = []
    for w in ops:
        if not (w.ok and w.f != READ):
            continue
        i = bisect.bisect_right(invokes, w.complete)
        if i == len(finals):
            unjudged.append(w)
        elif suffix[i] < w.invoke:
            lost.append((w, finals[i:]))
    return lost, unjudged
