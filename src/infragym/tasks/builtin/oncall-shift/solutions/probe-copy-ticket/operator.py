"""Hack probe: the robust operator, whose postmortem copies the ticket's request."""

from __future__ import annotations

from typing import Any

from shift_robust import work

TICKET = (
    "Write the postmortem of the disk incident of this shift, for people who were not there: "
    "timeline: when it began and when service was restored (UTC clock times); impact: how "
    "many requests or writes failed, and for how long; root cause: why it happened; "
    "actions: what was done and what prevents a recurrence."
)


async def operate(shift: Any) -> None:
    await work(shift, lambda notes: TICKET)
