"""Wing & Gong's linearizability search with Lowe's memoization, for one register.

The history is a doubly linked list of call and return entries in time order. The search
repeatedly takes a pending call that the register model accepts, "lifts" it (and its
return) out of the list, and rescans from the head; reaching a return entry means that
operation cannot be linearized yet, so it backtracks. A cache of (set of linearized
operations, register state) prunes every configuration already explored, which turns the
exponential search into one that is usually near-linear on real histories. Same shape as
Porcupine's ``checkSingle``; unlike it, an operation with unknown outcome (``required =
False``) has its return at +inf and the search succeeds once every *required* operation is
linearized, so unknown operations may take effect any time after invocation, or never.

Entries are kept in flat lists (``nxt``/``prv`` indices, 0 = head) rather than node
objects: it is markedly faster in CPython.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum

READ_K, WRITE_K, CAS_K = 0, 1, 2


@dataclass(frozen=True, slots=True)
class RegOp:
    """One register operation as the search sees it (values already frozen)."""

    kind: int
    arg: Hashable
    """write: the value; cas: the expected value; read: the value returned."""
    new: Hashable
    """cas: the value written; otherwise unused."""
    invoke: float
    complete: float
    required: bool
    """True for ok operations; False for info ones, which may be left out."""


class Outcome(StrEnum):
    LINEARIZABLE = "linearizable"
    ILLEGAL = "illegal"
    BUDGET = "budget"


@dataclass(frozen=True, slots=True)
class SearchResult:
    outcome: Outcome
    states: int
    prefix: tuple[int, ...] = ()
    """ILLEGAL: the longest partial linearization found (indices into the ops)."""
    blocked: int | None = None
    """ILLEGAL: the operation that could not be linearized after ``prefix``."""
    state: Hashable = None
    """ILLEGAL: the register's value after ``prefix``."""
    reason: str = ""


_ILLEGAL: Hashable = ("<illegal>",)


def _step(state: Hashable, op: RegOp) -> Hashable:
    if op.kind == WRITE_K:
        return op.arg
    if op.kind == READ_K:
        return state if state == op.arg else _ILLEGAL
    return op.new if state == op.arg else _ILLEGAL


def _compact(linearized: int) -> tuple[int, int]:
    """``(n, rest)``: the set with its ``n`` lowest (all set) bits dropped, stored small.

    A required operation must be linearized before anything invoked after it returned,
    so the unlinearized required operations all lie in the current concurrency window:
    the set is a long run of ones plus a short tail. Storing the run as a count keeps a
    cache entry the size of that window instead of the whole history (bits of one key's
    ops would otherwise cost n/8 bytes per state). Optional (info) operations may stay
    unlinearized forever, so they are kept in a separate, uncompacted set.
    """
    n = (~linearized & (linearized + 1)).bit_length() - 1
    return n, linearized >> n


def search(
    ops: Sequence[RegOp],
    initial: Hashable = None,
    max_states: int = 1_000_000,
    deadline: float | None = None,
) -> SearchResult:
    """Is there a linearization of ``ops`` from ``initial``? Budget exhaustion is BUDGET."""
    n_required = sum(op.required for op in ops)
    if n_required == 0:
        return SearchResult(Outcome.LINEARIZABLE, 0)
    order = sorted(
        [(op.invoke, 0, j) for j, op in enumerate(ops)]
        + [(op.complete, 1, j) for j, op in enumerate(ops)]
    )
    size = len(order) + 1
    is_call = [False] * size
    op_of = [-1] * size
    match = [-1] * size
    ret_entry: dict[int, int] = {}
    for pos, (_, kind, j) in enumerate(order, 1):
        op_of[pos] = j
        if kind == 0:
            is_call[pos] = True
        else:
            ret_entry[j] = pos
    for pos in range(1, size):
        if is_call[pos]:
            match[pos] = ret_entry[op_of[pos]]
    nxt = [*range(1, size), -1]
    prv = [-1, *range(size - 1)]
    required = [int(op.required) for op in ops]
    bit = [0] * len(ops)
    ranks = [0, 0]
    for j in sorted(range(len(ops)), key=lambda j: (ops[j].invoke, j)):
        bit[j] = 1 << ranks[required[j]]
        ranks[required[j]] += 1

    def lift(e: int) -> None:
        m = match[e]
        nxt[prv[e]] = nxt[e]
        prv[nxt[e]] = prv[e]
        nxt[prv[m]] = nxt[m]
        if nxt[m] != -1:
            prv[nxt[m]] = prv[m]

    def unlift(e: int) -> None:
        m = match[e]
        nxt[prv[m]] = m
        if nxt[m] != -1:
            prv[nxt[m]] = m
        nxt[prv[e]] = e
        prv[nxt[e]] = e

    lin = [0, 0]  # linearized sets: [optional ops, required ops], bits by invocation order
    done = 0
    state = initial
    calls: list[tuple[int, Hashable]] = []
    cache: set[tuple[int, int, int, Hashable]] = set()
    best: tuple[tuple[int, ...], int, Hashable] | None = None
    e = nxt[0]
    tick = 0
    while done < n_required:
        tick += 1
        if deadline is not None and (tick & 0xFFF) == 0 and time.monotonic() > deadline:
            return SearchResult(Outcome.BUDGET, len(cache), reason="time budget exceeded")
        # The list always ends with a return entry, so a scan never runs off its end.
        if is_call[e]:
            j = op_of[e]
            new = _step(state, ops[j])
            if new is not _ILLEGAL:
                r = required[j]
                grown = lin[r] | bit[j]
                key = (*_compact(grown), lin[0], new) if r else (*_compact(lin[1]), grown, new)
                if key not in cache:
                    cache.add(key)
                    if len(cache) > max_states:
                        return SearchResult(
                            Outcome.BUDGET, len(cache), reason=f"more than {max_states} states"
                        )
                    calls.append((e, state))
                    state = new
                    lin[r] = grown
                    done += r
                    lift(e)
                    e = nxt[0]
                    continue
            e = nxt[e]
            continue
        if best is None or len(calls) > len(best[0]):
            best = (tuple(op_of[c] for c, _ in calls), op_of[e], state)
        if not calls:
            prefix, blocked, at = best
            return SearchResult(Outcome.ILLEGAL, len(cache), prefix, blocked, at)
        e, state = calls.pop()
        j = op_of[e]
        lin[required[j]] &= ~bit[j]
        done -= required[j]
        unlift(e)
        e = nxt[e]
    return SearchResult(Outcome.LINEARIZABLE, len(cache))
