"""The robust operator's shift: follows the runbook, fixes causes rather than symptoms,
changes one node at a time and checks each before the next, and writes a precise
postmortem (operator.py plays it; the probes built on it change one part)."""

from __future__ import annotations

from typing import Any

from oncall_ops import (
    KVCTL,
    RUNBOOK_CONF,
    down_host,
    first_error_time,
    full_host,
    hosts,
    now,
    seconds,
    statuses,
)


async def orientation(shift: Any, old: list[str]) -> None:
    await shift.bash(old[0], "sed -n 1,40p /srv/app/RUNBOOK.md")
    st = statuses(await shift.bash(old[0], f"{KVCTL} status {' '.join(old)}"))
    one = st[old[0]]
    await shift.end(
        f"data: {one['data_file']}\nquorum: {one['majority']}\n"
        "restart: with the service tool, one node at a time, checking it answers "
        "(kvctl.py status) before the next"
    )


async def watch(shift: Any, host: str) -> None:
    """Check the node answers, and the clients see no errors, before going on."""
    await shift.bash(host, f"{KVCTL} status {host}; sleep 2")
    await shift.call("metrics", minutes=0.1)


async def restart_each(shift: Any, nodes: list[str]) -> None:
    for h in nodes:
        await shift.service(h, "restart")
        await watch(shift, h)


async def disk(shift: Any, old: list[str]) -> dict[str, Any]:
    victim = await full_host(shift, old)
    # diagnose before acting: what fills the disk, whether it still grows, what fails
    await shift.call("metrics", minutes=1)
    await shift.bash(victim, "for i in 1 2 3 4 5 6; do df -B1 --output=used /srv/data | tail -1; "
                     "sleep 1; done; du -sh /srv/data/* /srv/data/log/* 2>/dev/null")  # fmt: skip
    await shift.bash(victim, "cat /srv/etc/kv/kv.conf; tail -c 400 /srv/data/log/debug.log")
    log = await shift.bash(victim, "grep -m3 ERROR /srv/logs/kvnode.log")
    began = first_error_time(log) or now()
    # the cause: the debug trace, unbounded, on the data disk of every node
    for h in old:
        await shift.bash(h, f"printf '{RUNBOOK_CONF}' > /srv/etc/kv/kv.conf")
    await shift.bash(victim, ": > /srv/data/log/debug.log; df -h /srv/data")
    restored = now()
    await restart_each(shift, [victim] + [h for h in old if h != victim])
    for h in old:
        await shift.bash(h, "rm -f /srv/data/log/debug.log*; df -h /srv/data")
    await shift.bash(victim, f"{KVCTL} sync")
    await shift.call("metrics", minutes=1)
    await shift.end(
        f"{victim}'s data disk was full (the debug trace); debug trace off on every node, "
        "restarted one at a time"
    )
    return {"host": victim, "began": began, "restored": restored}


async def capacity(shift: Any, old: list[str], new: list[str]) -> None:
    peers = (await shift.bash(new[0], 'echo "$PEERS"')).splitlines()[0].strip()
    members = peers.replace(",", "\\n")
    for h in new:
        await shift.bash(
            h,
            f"mkdir -p /srv/etc/kv && printf '{members}\\n' > /srv/etc/kv/peers && "
            f"printf '{RUNBOOK_CONF}' > /srv/etc/kv/kv.conf",
        )
        await shift.service(h, "start")
        await shift.bash(h, f"{KVCTL} sync")
    for h in old:
        await shift.bash(h, f"printf '{members}\\n' > /srv/etc/kv/peers")
    await restart_each(shift, old)
    for h in old + new:
        await shift.bash(h, f"{KVCTL} sync")
    await shift.bash(old[0], f"{KVCTL} status {' '.join(old + new)}")
    await shift.end(f"{' and '.join(new)} joined: data synced before they served, every node "
                    "restarted one at a time with the five-node membership")  # fmt: skip


async def host(shift: Any, every: list[str]) -> None:
    victim = await down_host(shift, every)
    await shift.call("logs", host=victim, name="kvnode")
    await shift.bash(victim, f"ls -la /srv/data; {KVCTL} restore")
    await shift.service(victim, "start")
    await shift.bash(victim, f"{KVCTL} sync; {KVCTL} status")
    await shift.end(f"{victim}: data restored from its peers (damaged files kept aside), back")


async def change(shift: Any, every: list[str]) -> None:
    for h in every:
        await shift.service(h, "stop")
        await shift.bash(h, f"{KVCTL} migrate && echo 2 > /srv/etc/kv/version")
        await shift.service(h, "start")
        await shift.bash(h, f"{KVCTL} sync")
        await watch(shift, h)
    await shift.end("release 2 rolled out one node at a time (stop, migrate, start, sync)")


def postmortem(notes: dict[str, Any]) -> str:
    h, began, restored = notes["host"], notes["began"], notes["restored"]
    return (
        f"Postmortem: disk full on {h}\n\n"
        f"Timeline (UTC): {began} requests to {h} began failing (its data disk was full). "
        f"{restored} the log was truncated and {h} served again; the debug trace was then "
        "turned off on every node and each was restarted, one at a time.\n\n"
        f"Impact: every request sent to {h} failed for {seconds(began, restored)} s; the "
        "other nodes kept serving and no acknowledged write was lost.\n\n"
        "Root cause: kvnode's debug trace was on by default (kv.conf) and wrote every "
        f"request to /srv/data/log/debug.log on the data disk of {h}, with no rotation and "
        "no size limit; the log grew until the 16 MiB disk was full, and since the trace "
        "is written before a request is served, every request failed with ENOSPC.\n\n"
        "Actions: debug trace off on every node (new nodes included) with a size cap and "
        "rotation (debug_log_max_bytes) if it is turned on again; keep the trace off the "
        "data disk; add an alert on data disk usage above 80 %; fix the default kv.conf."
    )


async def work(shift: Any, write_postmortem: Any = None) -> None:
    """Every ticket; the postmortem is ``write_postmortem(notes)`` (default: the real one)."""
    every = hosts(shift)
    old, new = every[:3], every[3:]
    await orientation(shift, old)
    notes = await disk(shift, old)
    await capacity(shift, old, new)
    await host(shift, every)
    await change(shift, every)
    await shift.end((write_postmortem or postmortem)(notes))
    assert shift.over, "the shift has tickets left"
