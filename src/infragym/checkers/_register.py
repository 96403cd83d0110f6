"""Shared reading of key-value register histories (``read`` / ``write`` / ``cas`` per key).

Values are compared after :func:`freeze`, because a history read back from JSONL turns
tuples into lists: a checker must give the same verdict on a history and on its round trip.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from ..history import History, Operation, OpType

READ = "read"
WRITE = "write"
CAS = "cas"
REGISTER_FS = frozenset({READ, WRITE, CAS})

NO_WRITE: Hashable = ("<no write>",)
"""Sentinel: the operation writes nothing (a read)."""


def freeze(value: Any) -> Hashable:
    """A hashable, JSON-round-trip-stable form of ``value`` (lists and tuples compare equal)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, Hashable):
        return value
    return repr(value)


def cas_args(op: Operation) -> tuple[Hashable, Hashable]:
    """``(expected, new)`` of a cas; a malformed cas is an error, not a guess."""
    v = op.value
    if not isinstance(v, list | tuple) or len(v) != 2:
        raise ValueError(f"cas operation #{op.id} has value {v!r}; expected [expected, new]")
    return freeze(v[0]), freeze(v[1])


def written(op: Operation) -> Hashable:
    """The value ``op`` would leave in the register, or :data:`NO_WRITE` for a read."""
    if op.f == WRITE:
        return freeze(op.value)
    if op.f == CAS:
        return cas_args(op)[1]
    return NO_WRITE


def may_have_written(op: Operation) -> bool:
    """A write or cas that is ok or info (fail means it did not take effect)."""
    return op.f in (WRITE, CAS) and op.outcome is not OpType.FAIL


@dataclass(frozen=True, slots=True)
class KeyOps:
    """Register operations of one key, in invocation order."""

    key: Any
    ops: tuple[Operation, ...]


def register_ops(history: History) -> tuple[list[Operation], int]:
    """Register operations of ``history`` and how many other operations were ignored."""
    ops = history.operations()
    reg = [op for op in ops if op.f in REGISTER_FS]
    return reg, len(ops) - len(reg)


def split_by_key(ops: Iterable[Operation]) -> list[KeyOps]:
    """Independent keys, in a deterministic order, for per-key (P-compositional) checks."""
    groups: dict[Any, list[Operation]] = {}
    for op in ops:
        groups.setdefault(freeze(op.key), []).append(op)
    return [KeyOps(k, tuple(v)) for k, v in sorted(groups.items(), key=lambda kv: repr(kv[0]))]


def describe(op: Operation) -> str:
    """A short human description of one operation, for witnesses in explanations."""
    end = "never" if math.isinf(op.complete) else f"{op.complete:.3f}"
    if op.f == READ:
        what = f"read -> {op.result!r}"
    elif op.f == CAS:
        what = f"cas {op.value!r}"
    else:
        what = f"{op.f} {op.value!r}"
    return f"#{op.id} {what} ({op.outcome.value}, {op.invoke:.3f}-{end}s)"


def final_phase_start(history: History, settle_s: float) -> tuple[float, str | None]:
    """When the final read phase begins: the last heal plus ``settle_s``.

    Returns ``(start, problem)``; ``problem`` says why there is no final phase (a fault
    that was never healed leaves the system in an arbitrary state, so nothing is final).
    """
    windows = history.fault_windows()
    open_ = [w.label for w in windows if math.isinf(w.end)]
    if open_:
        return math.inf, f"fault(s) {', '.join(open_)} were never healed"
    last_heal = max((w.end for w in windows), default=-math.inf)
    return last_heal + settle_s, None
