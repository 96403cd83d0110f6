"""Shared helpers for the checker tests: a history builder and a brute-force oracle.

Holds no tests; it is imported by the ``test_checkers_*`` and ``test_rubric*`` modules.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from infragym.history import FaultAction, FaultEvent, History, Operation, OpEvent, OpType


class HistoryBuilder:
    """Writes histories by hand: each operation in one call, events sorted at ``build``."""

    def __init__(self) -> None:
        self._events: list[tuple[float, int, int, OpEvent]] = []
        self._faults: list[FaultEvent] = []
        self._next = 0

    def op(
        self,
        f: str,
        key: str | None,
        value: Any = None,
        *,
        t: float,
        done: float | None,
        outcome: str = "ok",
        result: Any = None,
        intended: float | None = None,
        node: str | None = None,
    ) -> int:
        op_id = self._next
        self._next += 1
        inv = OpEvent(OpType.INVOKE, op_id, f, t, key, value, intended, node)
        self._events.append((t, 0, op_id, inv))
        if done is not None:
            comp_value = result if f == "read" else value
            comp = OpEvent(OpType(outcome), op_id, f, done, key, comp_value, None, node)
            self._events.append((done, 1, op_id, comp))
        return op_id

    def write(self, key: str, value: Any, t: float, done: float | None, **kw: Any) -> int:
        return self.op("write", key, value, t=t, done=done, **kw)

    def read(self, key: str, result: Any, t: float, done: float | None, **kw: Any) -> int:
        return self.op("read", key, None, t=t, done=done, result=result, **kw)

    def cas(
        self, key: str, expected: Any, new: Any, t: float, done: float | None, **kw: Any
    ) -> int:
        return self.op("cas", key, [expected, new], t=t, done=done, **kw)

    def fault(
        self,
        label: str,
        start: float,
        end: float | None,
        fault: str = "partition",
        targets: tuple[str, ...] = (),
        detail: dict[str, Any] | None = None,
    ) -> None:
        self._faults.append(
            FaultEvent(start, fault, FaultAction.APPLY, label, targets, dict(detail or {}))
        )
        if end is not None:
            self._faults.append(FaultEvent(end, fault, FaultAction.HEAL, label, targets))

    def build(self, meta: dict[str, Any] | None = None) -> History:
        events = [e for *_, e in sorted(self._events, key=lambda x: x[:3])]
        return History(ops=events, faults=list(self._faults), meta=dict(meta or {}))


def requests(
    b: HistoryBuilder,
    start: float,
    end: float,
    rate: float,
    outcome: str = "ok",
    latency: float = 0.005,
    f: str = "request",
) -> None:
    """Open-loop operations every ``1/rate`` s, intended = invoked, from start to end."""
    n = round((end - start) * rate)
    for i in range(n):
        t = start + i / rate
        b.op(f, None, None, t=t, done=t + latency, outcome=outcome, intended=t)


def _freeze(v: Any) -> Hashable:
    return tuple(_freeze(x) for x in v) if isinstance(v, list | tuple) else v


def brute_linearizable(ops: Sequence[Operation], initial: Any = None) -> bool:
    """The reference: try every real-time-consistent order of every allowed op subset.

    Independent of the WGL code on purpose: per key, for each subset of info writes/cases,
    a depth-first enumeration of orders that respect real time (``a`` before ``b`` when
    ``a.complete < b.invoke``), pruning only prefixes the register rejects.
    """
    keys = {op.key for op in ops}
    return all(_brute_key([op for op in ops if op.key == k], initial) for k in keys)


def _brute_key(ops: list[Operation], initial: Any) -> bool:
    kept = [op for op in ops if op.outcome is not OpType.FAIL and (op.ok or op.f != "read")]
    required = [op for op in kept if op.ok]
    optional = [op for op in kept if not op.ok]
    for mask in range(1 << len(optional)):
        chosen = required + [op for i, op in enumerate(optional) if mask >> i & 1]
        if _some_order(chosen, _freeze(initial)):
            return True
    return False


def _apply(state: Hashable, op: Operation) -> tuple[bool, Hashable]:
    if op.f == "write":
        return True, _freeze(op.value)
    if op.f == "read":
        return state == _freeze(op.result), state
    expected, new = op.value
    return state == _freeze(expected), _freeze(new)


def _some_order(ops: list[Operation], state: Hashable) -> bool:
    if not ops:
        return True
    for i, o in enumerate(ops):
        rest = ops[:i] + ops[i + 1 :]
        if any(p.complete < o.invoke for p in rest):
            continue
        legal, nxt = _apply(state, o)
        if legal and _some_order(rest, nxt):
            return True
    return False


INF = math.inf
