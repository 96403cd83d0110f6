"""Histories: what clients did and what the nemesis did, on one clock, as JSONL."""

from ._events import FaultAction, FaultEvent, FaultWindow, Operation, OpEvent, OpType
from ._history import (
    MAX_OP_EVENTS,
    REREADS,
    SCHEMA_VERSION,
    TRUNCATED,
    Clock,
    History,
    fault_windows,
    pair_operations,
)
from ._values import MAX_VALUE_BYTES, digest, is_digest, stored_bytes, stored_value

__all__ = [
    "MAX_OP_EVENTS",
    "MAX_VALUE_BYTES",
    "REREADS",
    "SCHEMA_VERSION",
    "TRUNCATED",
    "Clock",
    "FaultAction",
    "FaultEvent",
    "FaultWindow",
    "History",
    "OpEvent",
    "OpType",
    "Operation",
    "digest",
    "fault_windows",
    "is_digest",
    "pair_operations",
    "stored_bytes",
    "stored_value",
]
