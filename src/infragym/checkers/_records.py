"""Checks of a record store (a database table, a ledger) from a history and what was read
back at the end: acknowledged inserts that vanished, a total that must never change, and
two nodes acknowledging writes at once (split brain).

The final state is not an operation of the history (it may hold thousands of ids, more
than one operation's value may), so the grader stores it in ``history.meta`` under a key
the checker names: :class:`LostInserts` reads a list of ids there, :class:`DualPrimary`
reads polls of which nodes called themselves primary.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..history import History, Operation
from ._base import CheckResult, Metric, Verdict


def _shown(items: Sequence[Any], n: int = 5) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


@dataclass(frozen=True)
class LostInserts:
    """Acknowledged inserts missing from the final state.

    Every ``ok`` operation ``f`` (its ``value`` a unique id) must be among the ids stored
    at ``history.meta[final_key]`` (the ids the store holds at the end, read after the
    last heal). Unknown (``info``) inserts may be there or not; an id there that no insert
    was ever invoked with is counted as ``phantom`` (a store inventing rows) and fails too.

    Verdict: fail if any acknowledged id is missing (or a phantom is there); unknown if
    the final state was not read or nothing was acknowledged. Score: the fraction of
    acknowledged inserts that survived; ``judged``: the acknowledged inserts.
    """

    f: str = "insert"
    final_key: str = "final_ids"
    name: str = "lost-inserts"

    def check(self, history: History) -> CheckResult:
        acked = [op.value for op in history.operations() if op.f == self.f and op.ok]
        invoked = {op.value for op in history.operations() if op.f == self.f}
        final = history.meta.get(self.final_key)
        metrics: dict[str, Metric] = {"acknowledged": len(acked)}
        if not isinstance(final, list):
            return CheckResult(
                self.name, Verdict.UNKNOWN, 0.0,
                "the final state was not read (the store did not answer after the last heal)",
                metrics, judged=0,
            )  # fmt: skip
        if not acked:
            return CheckResult(
                self.name, Verdict.UNKNOWN, 0.0, "no insert was acknowledged", metrics, judged=0
            )
        have = set(final)
        lost = sorted(v for v in set(acked) if v not in have)
        phantom = sorted(v for v in have if v not in invoked)
        metrics.update({"final": len(have), "lost": len(lost), "phantom": len(phantom)})
        score = 1 - len(lost) / len(set(acked))
        if lost or phantom:
            why = []
            if lost:
                why.append(f"{len(lost)} of {len(set(acked))} acknowledged inserts are missing "
                           f"from the final state ({_shown(lost)})")  # fmt: skip
            if phantom:
                why.append(f"{len(phantom)} rows no client inserted ({_shown(phantom)})")
            return CheckResult(
                self.name, Verdict.FAIL, score if not phantom else 0.0, "; ".join(why), metrics,
                judged=len(acked),
            )  # fmt: skip
        return CheckResult(
            self.name, Verdict.PASS, 1.0,
            f"all {len(set(acked))} acknowledged inserts are in the final state", metrics,
            judged=len(acked),
        )  # fmt: skip


@dataclass(frozen=True)
class TotalInvariant:
    """Every ``ok`` read ``f`` of an aggregate gives ``total`` (a bank's sum of balances,
    which transfers never change). The read's result is the number itself, or a list
    whose item ``index`` is. Verdict: fail on any other value; unknown with no ok read.
    Score: the fraction of reads that held the invariant; ``judged``: the ok reads."""

    total: int
    f: str = "snapshot"
    index: int | None = None
    name: str = "total-invariant"

    def _value(self, op: Operation) -> Any:
        r = op.result
        if self.index is None:
            return r
        return r[self.index] if isinstance(r, list | tuple) and len(r) > self.index else None

    def check(self, history: History) -> CheckResult:
        reads = [op for op in history.operations() if op.f == self.f and op.ok]
        if not reads:
            return CheckResult(
                self.name, Verdict.UNKNOWN, 0.0, f"no {self.f} read was answered", judged=0
            )
        bad = [op for op in reads if self._value(op) != self.total]
        metrics: dict[str, Metric] = {"reads": len(reads), "broken": len(bad)}
        if bad:
            first = bad[0]
            return CheckResult(
                self.name, Verdict.FAIL, 1 - len(bad) / len(reads),
                f"{len(bad)} of {len(reads)} {self.f} reads saw a total other than "
                f"{self.total} (first: {self._value(first)!r} at {first.invoke:.1f} s"
                f"{' from ' + first.node if first.node else ''})", metrics, judged=len(reads),
            )  # fmt: skip
        return CheckResult(
            self.name, Verdict.PASS, 1.0,
            f"all {len(reads)} {self.f} reads saw the total {self.total}", metrics,
            judged=len(reads),
        )  # fmt: skip


@dataclass(frozen=True)
class DualPrimary:
    """No two nodes acknowledge writes at once.

    Two kinds of evidence, either of which fails the check:

    - the history: two ``ok`` writes (operations of ``writes``, the node that acknowledged
      each in its ``node``) from different nodes completing within ``overlap_s`` of each
      other. A failover takes longer than that (the old primary must be found dead), so
      only two primaries at once produce such a pair;
    - the polls at ``history.meta[polls_key]``: ``[time, [nodes calling themselves
      primary]]``, e.g. from ``pg_is_in_recovery()`` on every node. A poll naming two
      nodes counts when each of them also acknowledged a write within ``overlap_s`` of the
      poll: an old primary that still calls itself primary for a moment after a fault but
      acknowledges nothing (its commits wait for a replica that left it) is fenced.
    - with ``persist_s``: polls naming two nodes or more, one after the other, for at least
      ``persist_s`` seconds, acknowledged or not: a fenced old primary is gone after a
      failover's overlap, while several nodes that stay primary are a split brain
      waiting for clients to find the second one. A node that acknowledged a write
      within ``overlap_s`` of a poll counts as primary in that poll, whatever it answered
      (or if it did not): a service must not hide its real primary from the poller
      behind a decoy.

    ``judged``: the acknowledged writes. Score 1 or 0.
    """

    writes: tuple[str, ...] = ("insert", "transfer")
    overlap_s: float = 1.0
    polls_key: str = "primary_polls"
    persist_s: float | None = None
    name: str = "dual-primary"

    def check(self, history: History) -> CheckResult:
        acks = sorted(
            (op.complete, op.node)
            for op in history.operations()
            if op.f in self.writes and op.ok and op.node is not None
        )
        metrics: dict[str, Metric] = {"acknowledged": len(acks)}
        if not acks:
            return CheckResult(
                self.name, Verdict.UNKNOWN, 0.0, "no write was acknowledged", metrics, judged=0
            )
        pairs: list[str] = []
        last: dict[str, float] = {}
        for t, node in acks:
            for other, t0 in last.items():
                if other != node and t - t0 <= self.overlap_s:
                    pairs.append(f"{other} at {t0:.2f} s and {node} at {t:.2f} s")
            last[node] = t
        polled: list[str] = []
        polls = history.meta.get(self.polls_key) or []
        times = [t for t, _ in acks]
        for t, nodes in polls:
            if len(nodes) < 2:
                continue
            lo, hi = _first_at(times, t - self.overlap_s), _first_at(times, t + self.overlap_s)
            near = {n for _, n in acks[lo:hi]}
            both = [n for n in nodes if n in near]
            if len(both) > 1:
                polled.append(f"{' and '.join(both)} at {t:.1f} s")
        # a host that acknowledged a write near a poll is a primary then, whatever it
        # told the poller (or when it did not answer it)
        merged = []
        for t, nodes in polls:
            lo, hi = _first_at(times, t - self.overlap_s), _first_at(times, t + self.overlap_s)
            merged.append((t, sorted(set(nodes) | {n for _, n in acks[lo:hi]})))
        lasting = _longest_run(merged)
        persisted = self.persist_s is not None and lasting >= self.persist_s
        metrics.update({"ack_pairs": len(pairs), "polls": len(polls), "dual_polls": len(polled),
                        "dual_run_s": round(lasting, 3)})  # fmt: skip
        if pairs or polled or persisted:
            why = []
            if pairs:
                why.append(f"{len(pairs)} pairs of writes acknowledged by two nodes within "
                           f"{self.overlap_s:g} s (first: {pairs[0]})")  # fmt: skip
            if polled:
                why.append(f"{len(polled)} polls found two primaries acknowledging writes "
                           f"(first: {polled[0]})")  # fmt: skip
            if persisted:
                why.append(f"every poll for {lasting:.1f} s found two primaries or more "
                           f"(allowed: {self.persist_s:g} s)")  # fmt: skip
            return CheckResult(
                self.name, Verdict.FAIL, 0.0, "; ".join(why), metrics, judged=len(acks)
            )
        return CheckResult(
            self.name, Verdict.PASS, 1.0,
            f"one node acknowledged writes at a time ({len(acks)} writes, {len(polls)} polls)",
            metrics, judged=len(acks),
        )  # fmt: skip


def _longest_run(polls: Sequence[tuple[float, Sequence[str]]]) -> float:
    """The longest span of consecutive polls that each named two nodes or more."""
    longest, start = 0.0, None
    for t, nodes in polls:
        if len(nodes) < 2:
            start = None
            continue
        start = t if start is None else start
        longest = max(longest, t - start)
    return longest


def _first_at(times: Sequence[float], t: float) -> int:
    return bisect.bisect_left(times, t)
