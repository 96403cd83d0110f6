"""A second correct operator, unlike the robust one: it keeps the debug trace but moves
it off the data disk with a size cap, frees the disk by restarting the node rather than
truncating, restores joining nodes offline before their first start, works in another
order and checks nodes with curl."""

from __future__ import annotations

import json
import re
from typing import Any

from oncall_ops import KVCTL, down_host, first_error_time, full_host, hosts, now, seconds

CONF = "debug = on\\ndebug_log = /srv/logs/kv-debug.log\\ndebug_log_max_bytes = 2097152\\n"
STATUS = "curl -sf http://localhost:8080/admin/status"


async def check(shift: Any, host: str) -> None:
    out = await shift.bash(
        host,
        f"sleep 1; {STATUS} && echo && curl -s -o /dev/null -w '%{{http_code}}' "
        "http://localhost:8080/kv/k1",
    )
    if '"node"' not in out:
        raise RuntimeError(f"{host} does not answer: {out}")


async def operate(shift: Any) -> None:
    every = hosts(shift)
    old, new = every[:3], every[3:]

    out = await shift.bash(old[1], f'ls -la /srv/data; echo "$PEERS"; {STATUS}')
    status = json.loads(out[out.index("{") : out.rindex("}") + 1])
    majority = len(status["peers"]) // 2 + 1
    await shift.end(
        f"data: {status['data_file']}\nquorum: {majority}\n"
        "restart: service restart on one node at a time; wait until it answers first"
    )

    disk = victim = await full_host(shift, old)
    await shift.bash(victim, "sleep 4; du -a /srv/data | sort -n | tail -5")
    began = (
        first_error_time(await shift.bash(victim, "grep -m2 ERROR /srv/logs/kvnode.log")) or now()
    )
    restored = now()
    for h in [victim] + [x for x in old if x != victim]:
        await shift.bash(h, f"printf '{CONF}' > /srv/etc/kv/kv.conf")
        await shift.service(h, "restart")  # lets go of the old trace file
        await shift.bash(h, "rm -f /srv/data/log/debug.log*; df -h /srv/data")
        if h == victim:
            restored = now()
        await check(shift, h)
    await shift.bash(victim, f"{KVCTL} sync")
    await shift.end(f"{victim}: trace moved to /srv/logs with a 2 MiB cap on every node")

    peers = re.search(rf"{re.escape(old[0])}=\S+", await shift.bash(new[0], 'echo "$PEERS"'))
    assert peers is not None
    members = peers.group(0).replace(",", "\\n")
    for h in new:
        await shift.bash(h, f"mkdir -p /srv/etc/kv; printf '{members}\\n' > /srv/etc/kv/peers; "
                         f"printf '{CONF}' > /srv/etc/kv/kv.conf; {KVCTL} restore")  # fmt: skip
    for h in reversed(old):
        await shift.bash(h, f"printf '{members}\\n' > /srv/etc/kv/peers")
        await shift.service(h, "restart")
        await check(shift, h)
    for h in new:
        await shift.service(h, "start")
        await shift.bash(h, f"{KVCTL} sync")
        await check(shift, h)
    for h in old:
        await shift.bash(h, f"{KVCTL} sync")
    await shift.end(f"joined {' and '.join(new)}: restored from the peers before their first start")

    victim = await down_host(shift, every)
    await shift.bash(victim, f"tail -3 /srv/logs/kvnode.log; {KVCTL} restore")
    await shift.service(victim, "start")
    await shift.bash(victim, f"{KVCTL} sync")
    await check(shift, victim)
    await shift.end(f"restored {victim} from its peers")

    for h in reversed(every):
        await shift.service(h, "stop")
        await shift.bash(h, f"{KVCTL} migrate; echo 2 > /srv/etc/kv/version")
        await shift.service(h, "start")
        await shift.bash(h, f"{KVCTL} sync")
        await check(shift, h)
    await shift.end("release 2 everywhere, one node at a time, newest nodes first")

    await shift.end(
        f"Incident: {disk} out of disk space.\n"
        f"From {began} UTC to {restored} UTC ({seconds(began, restored)} s) the data disk of "
        f"{disk} was full and every request to it failed with ENOSPC.\n"
        "Why: the debug log (request trace, default kv.conf) lived on the data disk and was "
        "never rotated, with no size cap, so it grew until the disk was full.\n"
        "Follow-up: the trace now goes to /srv/logs, off the data disk, rotated at 2 MiB on "
        "every node; we add an alert when a data disk passes 80 %."
    )
