"""Linearizability of a key-value register, key by key.

Linearizability is compositional (Herlihy & Wing): a history is linearizable iff each
key's sub-history is, so keys are searched independently, which keeps each search small.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from ..history import History, Operation, OpType
from ._base import CheckResult, Metric, Verdict
from ._register import CAS, READ, cas_args, describe, freeze, register_ops, split_by_key
from ._wgl import CAS_K, READ_K, WRITE_K, Outcome, RegOp, SearchResult, search


@dataclass(frozen=True)
class Linearizable:
    """Is every key's ``read``/``write``/``cas`` history linearizable?

    ``ok`` operations must take effect between invocation and completion; ``fail`` ones
    did not take effect and are dropped; ``info`` writes and cases may take effect any time
    after invocation, or never; ``info`` reads constrain nothing and are dropped. A read's
    ``None`` means the key was absent, the register's ``initial`` state. Operations that
    touch at the same instant are treated as concurrent. ``judged`` counts the ``ok``
    operations searched (a history of refusals and timeouts is trivially linearizable).

    ``max_states`` bounds the memoization cache per key (the deterministic budget: the
    same history always gets the same verdict); ``time_budget_s`` bounds the whole check as
    a safety net and can make a verdict depend on machine speed, so size it generously.
    A key whose search exceeds either budget is unknown, never guessed. Verdict: fail if
    any key is not linearizable (a definite counterexample stands even if other keys are
    unknown), else unknown if any key is, else pass. Score: fraction of keys shown
    linearizable.
    """

    time_budget_s: float = 30.0
    max_states: int = 500_000
    initial: Any = None
    name: str = "linearizable"

    def __post_init__(self) -> None:
        if not self.time_budget_s > 0:
            raise ConfigError(f"Linearizable time_budget_s={self.time_budget_s} must be > 0")
        if self.max_states < 1:
            raise ConfigError(f"Linearizable max_states={self.max_states} must be >= 1")

    def check(self, history: History) -> CheckResult:
        ops, ignored = register_ops(history)
        if not ops:
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                "the history has no read/write/cas operations; nothing to check",
                {"ignored_ops": ignored},
                judged=0,
            )
        deadline = time.monotonic() + self.time_budget_s
        initial = freeze(self.initial)
        failed: list[tuple[Any, str]] = []
        unknown: list[tuple[Any, str]] = []
        passed = states = checked_ops = ok_checked = 0
        groups = split_by_key(ops)
        for group in groups:
            kept = [op for op in group.ops if _kept(op)]
            checked_ops += len(kept)
            if time.monotonic() > deadline:
                unknown.append((group.key, "time budget exhausted before this key"))
                continue
            ok_checked += sum(op.ok for op in kept)
            res = search([_reg_op(op) for op in kept], initial, self.max_states, deadline)
            states += res.states
            if res.outcome is Outcome.LINEARIZABLE:
                passed += 1
            elif res.outcome is Outcome.BUDGET:
                unknown.append((group.key, res.reason))
            else:
                failed.append((group.key, _witness(group.key, kept, res)))
        metrics: dict[str, Metric] = {
            "keys": len(groups),
            "keys_passed": passed,
            "keys_failed": len(failed),
            "keys_unknown": len(unknown),
            "ops_checked": checked_ops,
            "ignored_ops": ignored,
            "states": states,
        }
        score = passed / len(groups)
        if failed:
            metrics["failed_keys"] = _keys(failed)
            metrics["witness"] = failed[0][1]
            return CheckResult(
                self.name,
                Verdict.FAIL,
                score,
                f"{len(failed)} of {len(groups)} keys not linearizable; {failed[0][1]}",
                metrics,
                judged=ok_checked,
            )
        if unknown:
            metrics["unknown_keys"] = _keys(unknown)
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                score,
                f"{len(unknown)} of {len(groups)} keys could not be decided within the "
                f"budget ({unknown[0][1]}; keys {_keys(unknown)}); raise max_states or "
                "time_budget_s, or shorten the history",
                metrics,
                judged=ok_checked,
            )
        return CheckResult(
            self.name,
            Verdict.PASS,
            1.0,
            f"all {len(groups)} keys linearizable ({checked_ops} operations, {states} states)",
            metrics,
            judged=ok_checked,
        )


def _kept(op: Operation) -> bool:
    if op.outcome is OpType.FAIL:
        return False
    return op.ok or op.f != READ


def _reg_op(op: Operation) -> RegOp:
    if op.f == READ:
        return RegOp(READ_K, freeze(op.result), None, op.invoke, op.complete, True)
    if op.f == CAS:
        expected, new = cas_args(op)
        return RegOp(CAS_K, expected, new, op.invoke, op.complete, op.ok)
    return RegOp(WRITE_K, freeze(op.value), None, op.invoke, op.complete, op.ok)


def _witness(key: Any, kept: list[Operation], res: SearchResult) -> str:
    prefix = [kept[i] for i in res.prefix]
    shown = ", ".join(describe(op) for op in prefix[-4:])
    if len(prefix) > 4:
        shown = f"... {len(prefix) - 4} more, {shown}"
    state: Hashable = res.state
    blocked = "" if res.blocked is None else describe(kept[res.blocked])
    return (
        f"key {key!r}: after linearizing {len(prefix)} ops [{shown}] the value is {state!r}, "
        f"and no order of the remaining ops can place {blocked}"
    )


def _keys(items: list[tuple[Any, str]]) -> str:
    keys = [repr(k) for k, _ in items]
    return ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
