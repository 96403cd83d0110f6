"""The naive operator: fixes what it sees, not why. It deletes the log that filled the
disk (and kills the node when that frees nothing), joins the new nodes without moving
data, starts the damaged node as it is, upgrades every node at once, and writes a vague
postmortem."""

from __future__ import annotations

from typing import Any

from oncall_ops import KVCTL, down_host, full_host, hosts


async def all_at_once(shift: Any, nodes: list[str], between: str = "true") -> None:
    for h in nodes:
        await shift.service(h, "stop")
    for h in nodes:
        await shift.bash(h, between)
    for h in nodes:
        await shift.service(h, "start")


async def operate(shift: Any) -> None:
    every = hosts(shift)
    old, new = every[:3], every[3:]
    await shift.bash(old[0], "ls /srv/data")
    await shift.end("data: /srv/data\nquorum: all of them\nrestart: service restart")

    victim = await full_host(shift, old)
    await shift.bash(victim, "rm -f /srv/data/log/debug.log; df -h /srv/data")
    await shift.service(victim, "restart")  # the space came back only once it was killed
    await shift.end(f"deleted the big log on {victim} and restarted it")

    peers = (await shift.bash(new[0], 'echo "$PEERS"')).splitlines()[0].strip()
    for h in every:
        await shift.bash(h, f"printf '{peers}\\n' > /srv/etc/kv/peers")
    for h in new:
        await shift.service(h, "start")
    await all_at_once(shift, old)
    await shift.end(f"{' and '.join(new)} are in the cluster")

    victim = await down_host(shift, every)
    await shift.service(victim, "start")
    await shift.end(f"{victim} is back up")

    await all_at_once(shift, every, f"{KVCTL} migrate && echo 2 > /srv/etc/kv/version")
    await shift.end("release 2 is on every node")

    await shift.end(
        "Postmortem: a disk filled up on one of the hosts and some requests failed for a "
        "while. We deleted the big file and restarted the service, which fixed it. We will "
        "keep an eye on it."
    )
