"""Histories: what clients did and what the nemesis did, on one clock, as JSONL."""

from ._events import FaultAction, FaultEvent, FaultWindow, Operation, OpEvent, OpType
from ._history import SCHEMA_VERSION, Clock, History, fault_windows, pair_operations

__all__ = [
    "SCHEMA_VERSION",
    "Clock",
    "FaultAction",
    "FaultEvent",
    "FaultWindow",
    "History",
    "OpEvent",
    "OpType",
    "Operation",
    "fault_windows",
    "pair_operations",
]
