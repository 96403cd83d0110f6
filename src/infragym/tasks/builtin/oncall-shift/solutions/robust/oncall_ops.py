"""What the scripted operators of oncall-shift share: finding hosts, the incident host,
and times."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

RUNBOOK_CONF = "debug = off\ndebug_log_max_bytes = 1048576\n"
KVCTL = "python3 /srv/app/kvctl.py"


def hosts(shift: Any) -> list[str]:
    """Every host the episode's tools name (those a ticket adds included)."""
    spec = next(t for t in shift.env.tools if t.name == "host_bash")
    return list(spec.parameters["properties"]["host"]["enum"])


def now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


def statuses(text: str) -> dict[str, dict[str, Any]]:
    """``kvctl.py status`` output: host -> its status JSON."""
    out = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] == "200":
            out[parts[0]] = json.loads(parts[2])
    return out


async def _first(
    shift: Any, among: list[str], hit: Callable[[str], Awaitable[bool]], what: str
) -> str:
    """The first host of ``among`` that ``hit`` says is the paged one, looking again
    every 2 s for up to 20 s once the page had 5 s to come in."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20.0
    await shift.bash(among[0], "sleep 5")
    while True:
        for h in among:
            if await hit(h):
                return h
        if loop.time() > deadline:
            raise RuntimeError(f"no host {what}")
        await shift.bash(among[0], "sleep 2")


async def full_host(shift: Any, among: list[str]) -> str:
    """The host whose data disk is (nearly) full."""

    async def full(h: str) -> bool:
        m = re.search(r"(\d+)%", await shift.bash(h, "df --output=pcent /srv/data | tail -1"))
        return m is not None and int(m.group(1)) >= 90

    return await _first(shift, among, full, "has a full data disk")


async def down_host(shift: Any, among: list[str]) -> str:
    """The host whose node is not running."""

    async def down(h: str) -> bool:
        return "not running" in await shift.service(h, "status")

    return await _first(shift, among, down, "went down")


def first_error_time(log: str) -> str | None:
    """The UTC time of the first ENOSPC error in a node's log."""
    for line in log.splitlines():
        if "ERROR" in line and ("No space" in line or "ENOSPC" in line or "28" in line):
            m = re.match(r"\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)Z", line)
            if m:
                return m.group(1)
    return None


def seconds(a: str, b: str) -> int:
    def s(t: str) -> int:
        h, m, x = (int(v) for v in t.split(":"))
        return h * 3600 + m * 60 + x

    return (s(b) - s(a)) % 86400
