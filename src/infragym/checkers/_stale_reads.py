"""Reads that are wrong in real time, with no search: stale, phantom and aborted reads.

Cheaper and easier to explain than a linearizability search, and it still catches what
graders care about most: a replica serving old data after a partition heals, and a server
that makes values up or stores nothing. Every read it flags is also non-linearizable.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable
from dataclasses import dataclass

from ..history import History, Operation, OpType
from ._base import CheckResult, Metric, Verdict
from ._register import READ, describe, freeze, register_ops, split_by_key, written


@dataclass(frozen=True)
class StaleReads:
    """Stale, phantom and aborted ``ok`` reads of a key-value register.

    For an ``ok`` read ``r`` of key ``k`` returning ``v`` (``None`` = absent, the initial
    state, "written" at time -inf), consider the writes and cases of ``k`` that write ``v``
    and were invoked no later than ``r`` completed (touching operations are concurrent):

    - **phantom**: there are none (and ``v`` is not ``None``): the value was never written,
      or only after the read had already returned it.
    - **aborted**: all of them ended ``fail``, i.e. did not take effect.
    - **stale**: let ``t`` be the latest completion among those that may have taken effect
      (``info`` completes at +inf, so it is never stale). ``r`` is stale if some other
      ``ok`` write of ``k`` was invoked after ``t`` and completed before ``r`` was invoked:
      ``v`` had been overwritten, entirely in real time, before the read began.

    Verdict: fail on any such read; unknown if there are no ok reads.
    Score: the fraction of ok reads that are none of these; ``judged``: the ok reads.
    """

    name: str = "stale-reads"

    def check(self, history: History) -> CheckResult:
        ops, ignored = register_ops(history)
        reads = [op for op in ops if op.f == READ and op.ok]
        metrics: dict[str, Metric] = {"ok_reads": len(reads), "ignored_ops": ignored}
        if not reads:
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                "the history has no ok reads; stale reads cannot be judged",
                metrics,
                judged=0,
            )
        bad: dict[str, list[str]] = {"stale": [], "phantom": [], "aborted": []}
        for group in split_by_key(ops):
            for kind, msg in _judge_key(group.ops):
                bad[kind].append(f"key {group.key!r}: {msg}")
        for kind, items in bad.items():
            metrics[kind] = len(items)
        n_bad = sum(len(v) for v in bad.values())
        score = 1.0 - n_bad / len(reads)
        if n_bad == 0:
            return CheckResult(
                self.name,
                Verdict.PASS,
                1.0,
                f"none of {len(reads)} ok reads was stale, phantom or aborted",
                metrics,
                judged=len(reads),
            )
        parts = [f"{len(v)} {k}" for k, v in bad.items() if v]
        examples = [m for v in bad.values() for m in v[:2]][:4]
        metrics["witness"] = "; ".join(examples)
        return CheckResult(
            self.name,
            Verdict.FAIL,
            score,
            f"{', '.join(parts)} of {len(reads)} ok reads; e.g. {'; '.join(examples)}",
            metrics,
            judged=len(reads),
        )


def _judge_key(ops: tuple[Operation, ...]) -> list[tuple[str, str]]:
    writers: dict[Hashable, list[Operation]] = {}
    for op in ops:
        if op.f != READ:
            writers.setdefault(written(op), []).append(op)
    acked = sorted((op for op in ops if op.f != READ and op.ok), key=lambda op: op.complete)
    completes = [w.complete for w in acked]
    latest_invoke: list[float] = []
    for w in acked:
        latest_invoke.append(max(w.invoke, latest_invoke[-1] if latest_invoke else -math.inf))
    out: list[tuple[str, str]] = []
    for r in ops:
        if not (r.f == READ and r.ok):
            continue
        v = freeze(r.result)
        attempted = [w for w in writers.get(v, ()) if w.invoke <= r.complete]
        if not attempted and v is not None:
            out.append(("phantom", f"{describe(r)} returned a value never written"))
            continue
        possible = [w for w in attempted if w.outcome is not OpType.FAIL]
        if attempted and not possible and v is not None:
            out.append(("aborted", f"{describe(r)} returned the value of a failed write"))
            continue
        t = max((w.complete for w in possible), default=-math.inf)
        n = bisect.bisect_left(completes, r.invoke)
        if n and latest_invoke[n - 1] > t:
            newer = next(w for w in acked[:n] if w.invoke > t)
            out.append(("stale", f"{describe(r)} though {describe(newer)} overwrote it first"))
    return out
