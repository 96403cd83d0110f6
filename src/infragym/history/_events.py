"""Records of what happened: client operations and fault events.

A history is append-only. Each client operation appears twice: an ``invoke`` event when
the client starts it and a completion (``ok``, ``fail`` or ``info``) when it ends. ``info``
means the outcome is unknown (a timeout, a dropped connection): the operation may or may not
have taken effect, and a checker must allow both. Fault events record when the nemesis
applied or healed a fault. All times are seconds on one monotonic clock, relative to the
history's start, so workload and nemesis events can be compared directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class OpType(StrEnum):
    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class OpEvent:
    """One line of a history: an operation's invocation or its completion.

    ``id`` pairs an invocation with its completion. ``f`` is the operation kind
    (``read``, ``write``, ``cas``, ``request``...). For a write ``value`` is the value
    written; for a read's completion it is the value read (``None`` = key absent); for a
    cas it is ``[expected, new]``. ``intended`` is the time the open-loop schedule meant the
    operation to start (invoke only): latency is measured from it, so a stalled client
    cannot hide a slow server (no coordinated omission).
    """

    type: OpType
    id: int
    f: str
    time: float
    key: str | None = None
    value: Any = None
    intended: float | None = None
    node: str | None = None
    error: str | None = None


class FaultAction(StrEnum):
    APPLY = "apply"
    HEAL = "heal"


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """The nemesis applied or healed a fault at ``time``.

    ``fault`` is the fault kind (``crash``, ``pause``, ``partition``...), ``targets`` the
    hosts it acted on, ``label`` names this fault instance so apply and heal can be paired
    when several faults overlap.
    """

    time: float
    fault: str
    action: FaultAction
    label: str
    targets: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion.

    ``outcome`` is ``ok``, ``fail`` or ``info``; an operation never completed in the
    history (the run ended first) is ``info`` with ``complete = inf``. ``value`` is the
    input (what was written) and ``result`` the output: the completion's value, whatever
    the operation (what a read read, a counter's new value, a request's status code; a
    key-value write's completion repeats what it wrote). A never-completed one has None.
    """

    id: int
    f: str
    key: str | None
    value: Any
    result: Any
    outcome: OpType
    invoke: float
    complete: float
    intended: float
    node: str | None = None
    error: str | None = None

    @property
    def latency(self) -> float:
        """Seconds from the intended start to completion (inf if never completed)."""
        return self.complete - self.intended

    @property
    def ok(self) -> bool:
        return self.outcome is OpType.OK

    @property
    def definite(self) -> bool:
        """True when the outcome is known (ok or fail)."""
        return self.outcome in (OpType.OK, OpType.FAIL)


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A span during which one fault instance was in effect. ``end`` is inf if never healed."""

    fault: str
    label: str
    targets: tuple[str, ...]
    start: float
    end: float

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


INF = math.inf
