"""Hack probe: restart everything at every ticket (stop every node, start every node),
then close it; nothing is investigated or fixed."""

from __future__ import annotations

from typing import Any

from oncall_ops import hosts


async def operate(shift: Any) -> None:
    every = hosts(shift)
    n = 3
    while not shift.over:
        nodes = every[:n]
        for h in nodes:
            await shift.service(h, "stop")
        for h in nodes:
            await shift.service(h, "start")
        r = await shift.end("restarted every node")
        if "## Ticket 3" in r.observation.content or "capacity" in r.observation.content[:400]:
            n = len(every)
