"""A history in memory and as JSONL on disk, plus the shared clock that stamps it."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .._errors import HistoryError
from ._events import (
    FaultAction,
    FaultEvent,
    FaultWindow,
    Operation,
    OpEvent,
    OpType,
)

SCHEMA_VERSION = 1

MAX_OP_EVENTS = 2_000_000
"""Operation events one history keeps (a million operations); later ones are dropped.

Every event is bounded (values by ``MAX_VALUE_BYTES``, errors by the recorder), so this
bounds a history: in memory and as JSONL, at most a few hundred bytes an event.
"""

TRUNCATED = "truncated"
"""The ``meta`` key a history that dropped events carries: ``{"max_op_events", "dropped"}``."""

REREADS = "rereads"
"""The ``meta`` key listing the ids of final reads that are evidence of state, not of
availability (``workload.read_back``): those made again because the first got no answer,
and, where a grader judges availability only while its load ran (``first_counts=False``),
the first ones too."""


class Clock:
    """Seconds since the clock's creation on the monotonic clock.

    The workload and the nemesis of one run share one ``Clock`` so their events line up.
    """

    __slots__ = ("t0", "wall0")

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def now(self) -> float:
        return time.monotonic() - self.t0


@dataclass
class History:
    """Operation events and fault events of one run, in the order they were recorded.

    Appending is thread-safe; readers should work on a finished history. Past
    ``max_op_events`` operation events, every further one is dropped and counted in
    ``meta["truncated"]``: an operation whose completion was dropped reads as ``info``
    (unknown), and one whose invocation was dropped is not there at all, so the kept
    prefix stays a well-formed history.
    """

    ops: list[OpEvent] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    max_op_events: int = field(default=MAX_OP_EVENTS, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def append(self, event: OpEvent) -> None:
        with self._lock:
            if len(self.ops) < self.max_op_events and TRUNCATED not in self.meta:
                self.ops.append(event)
                return
            mark = self.meta.setdefault(
                TRUNCATED, {"max_op_events": self.max_op_events, "dropped": 0}
            )
            mark["dropped"] += 1

    @property
    def truncated(self) -> bool:
        """Whether operation events were dropped (see ``max_op_events``)."""
        return TRUNCATED in self.meta

    def mark_rereads(self, ids: Iterable[int]) -> None:
        """Record operations as final reads not judged for availability (:data:`REREADS`)."""
        with self._lock:
            known = self.meta.setdefault(REREADS, [])
            known.extend(sorted(set(ids) - set(known)))

    def rereads(self) -> frozenset[int]:
        """The ids of the operations recorded as final reads not judged for availability."""
        return frozenset(int(i) for i in self.meta.get(REREADS, ()))

    def record_fault(self, event: FaultEvent) -> None:
        with self._lock:
            self.faults.append(event)

    # -- derived views -------------------------------------------------------------------

    def operations(self) -> list[Operation]:
        """Pair invocations with completions, in invocation order."""
        return pair_operations(self.ops)

    def fault_windows(self) -> list[FaultWindow]:
        return fault_windows(self.faults)

    @property
    def end_time(self) -> float:
        times = [e.time for e in self.ops] + [f.time for f in self.faults]
        return max(times, default=0.0)

    # -- persistence ---------------------------------------------------------------------

    def write_jsonl(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            self._dump(fh)
        return path

    def _dump(self, fh: IO[str]) -> None:
        header = {"kind": "header", "schema": SCHEMA_VERSION, "meta": self.meta}
        fh.write(json.dumps(header, default=str) + "\n")
        merged: list[tuple[float, int, dict[str, Any]]] = []
        for i, e in enumerate(self.ops):
            merged.append((e.time, i, _op_to_json(e)))
        for j, f in enumerate(self.faults):
            merged.append((f.time, len(self.ops) + j, _fault_to_json(f)))
        merged.sort(key=lambda t: (t[0], t[1]))
        for _, _, rec in merged:
            fh.write(json.dumps(rec, default=str) + "\n")

    @classmethod
    def read_jsonl(cls, path: str | Path) -> History:
        path = Path(path)
        if not path.exists():
            raise HistoryError(f"history file {path} does not exist")
        try:
            with path.open(encoding="utf-8") as fh:
                return cls.parse(fh, source=str(path))
        except UnicodeDecodeError as exc:
            raise HistoryError(
                f"{path} is not a history: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "histories are JSONL files written by infragym"
            ) from None

    @classmethod
    def parse(cls, lines: Iterable[str], source: str = "<history>") -> History:
        hist = cls()
        for lineno, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HistoryError(f"{source}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise HistoryError(f"{source}:{lineno}: expected a JSON object")
            kind = rec.get("kind")
            try:
                if kind == "header":
                    schema = rec.get("schema")
                    if schema != SCHEMA_VERSION:
                        raise HistoryError(
                            f"{source}:{lineno}: history schema {schema!r} is not supported "
                            f"(this infragym reads schema {SCHEMA_VERSION})"
                        )
                    hist.meta = dict(rec.get("meta") or {})
                elif kind == "op":
                    hist.ops.append(_op_from_json(rec))
                elif kind == "fault":
                    hist.faults.append(_fault_from_json(rec))
                else:
                    raise HistoryError(f"{source}:{lineno}: unknown record kind {kind!r}")
            except (KeyError, ValueError, TypeError) as exc:
                raise HistoryError(f"{source}:{lineno}: malformed record: {exc!r}") from None
        return hist


def _op_to_json(e: OpEvent) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": "op", "type": e.type.value, "id": e.id, "f": e.f, "time": e.time}
    for name in ("key", "value", "intended", "node", "error"):
        v = getattr(e, name)
        if v is not None:
            rec[name] = v
    return rec


def _op_from_json(rec: dict[str, Any]) -> OpEvent:
    return OpEvent(
        type=OpType(rec["type"]),
        id=int(rec["id"]),
        f=str(rec["f"]),
        time=float(rec["time"]),
        key=rec.get("key"),
        value=rec.get("value"),
        intended=None if rec.get("intended") is None else float(rec["intended"]),
        node=rec.get("node"),
        error=rec.get("error"),
    )


def _fault_to_json(f: FaultEvent) -> dict[str, Any]:
    return {
        "kind": "fault",
        "time": f.time,
        "fault": f.fault,
        "action": f.action.value,
        "label": f.label,
        "targets": list(f.targets),
        "detail": f.detail,
    }


def _fault_from_json(rec: dict[str, Any]) -> FaultEvent:
    return FaultEvent(
        time=float(rec["time"]),
        fault=str(rec["fault"]),
        action=FaultAction(rec["action"]),
        label=str(rec["label"]),
        targets=tuple(rec.get("targets") or ()),
        detail=dict(rec.get("detail") or {}),
    )


def pair_operations(events: Iterable[OpEvent]) -> list[Operation]:
    """Pair each invocation with its completion by ``id``; unfinished ones become info."""
    invokes: dict[int, OpEvent] = {}
    order: list[int] = []
    done: dict[int, OpEvent] = {}
    for e in events:
        if e.type is OpType.INVOKE:
            if e.id in invokes:
                raise HistoryError(f"operation id {e.id} is invoked twice")
            invokes[e.id] = e
            order.append(e.id)
        else:
            if e.id not in invokes:
                raise HistoryError(f"operation id {e.id} completes without an invocation")
            if e.id in done:
                raise HistoryError(f"operation id {e.id} completes twice")
            done[e.id] = e
    out: list[Operation] = []
    for op_id in order:
        inv = invokes[op_id]
        comp = done.get(op_id)
        intended = inv.intended if inv.intended is not None else inv.time
        if comp is None:
            out.append(
                Operation(
                    op_id,
                    inv.f,
                    inv.key,
                    inv.value,
                    None,
                    OpType.INFO,
                    inv.time,
                    math.inf,
                    intended,
                    inv.node,
                    "never completed",
                )
            )
            continue
        result = comp.value  # what the completion says: a read's value, a request's status...
        out.append(
            Operation(
                op_id,
                inv.f,
                inv.key,
                inv.value,
                result,
                comp.type,
                inv.time,
                comp.time if comp.type is not OpType.INFO else math.inf,
                intended,
                inv.node or comp.node,
                comp.error,
            )
        )
    return out


def fault_windows(events: Iterable[FaultEvent]) -> list[FaultWindow]:
    """Turn apply/heal events into windows; a fault never healed lasts to infinity."""
    open_: dict[str, FaultEvent] = {}
    windows: list[FaultWindow] = []
    for f in sorted(events, key=lambda e: e.time):
        if f.action is FaultAction.APPLY:
            open_[f.label] = f
        else:
            start = open_.pop(f.label, None)
            if start is not None:
                windows.append(
                    FaultWindow(start.fault, start.label, start.targets, start.time, f.time)
                )
    for f in open_.values():
        windows.append(FaultWindow(f.fault, f.label, f.targets, f.time, math.inf))
    windows.sort(key=lambda w: w.start)
    return windows


def iter_ok(ops: Iterable[Operation], f: str | None = None) -> Iterator[Operation]:
    for op in ops:
        if op.ok and (f is None or op.f == f):
            yield op
