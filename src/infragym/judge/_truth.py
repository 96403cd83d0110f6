"""Ground truth for a judge, in the shape the platform records it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .._errors import ConfigError
from ..history import FaultEvent

__all__ = ["incident_truth"]


def incident_truth(
    faults: Iterable[FaultEvent],
    *,
    root_cause: str,
    impact: Mapping[str, Any],
    clock_zero: datetime,
    kinds: Iterable[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What a postmortem is judged against: the fault events of ``kinds`` exactly as the
    nemesis recorded them in the history (times on the run's clock, in seconds after
    ``clock_zero``, a timezone-aware wall time), the root cause the grader knows because it
    caused it, and the impact it measured from the history (e.g. ``failed_writes``,
    ``unavailable_s``, ``availability``)."""
    if clock_zero.tzinfo is None:
        raise ConfigError("clock_zero must be timezone-aware (e.g. datetime.now(UTC))")
    want = None if kinds is None else set(kinds)
    events = [
        {
            "kind": "fault",
            "time": round(f.time, 3),
            "fault": f.fault,
            "action": f.action.value,
            "label": f.label,
            "targets": list(f.targets),
            "detail": dict(f.detail),
        }
        for f in faults
        if want is None or f.fault in want
    ]
    if not events:
        raise ConfigError(f"no fault event of kinds {sorted(want or [])} to judge against")
    return {
        "clock_zero_utc": clock_zero.isoformat(),
        "faults": events,
        "root_cause": root_cause,
        "impact": dict(impact),
        **extra,
    }
