"""The broken operator: takes the service down. It "frees space" by wiping every node's
data directory and restarting all of them at once, and leaves what it breaks broken."""

from __future__ import annotations

from typing import Any

from oncall_ops import hosts


async def operate(shift: Any) -> None:
    every = hosts(shift)
    old = every[:3]
    for h in old:
        await shift.service(h, "stop")
    await shift.end("data: /srv/app\nquorum: 1\nrestart: stop everything, then start it")
    for h in old:
        await shift.bash(h, "rm -rf /srv/data/* /srv/etc/kv")
    await shift.end("wiped the data disks")
    while not shift.over:
        await shift.end("done")
