"""Hidden grader of live-grow, a live test task whose cluster grows.

- ``warmup``: every host at reset answers ``/health`` (1 when it does).
- ``capacity``: what the platform did when it added kv3 and kv4, each part 0 or 1: the
  cluster has the four hosts, the new hosts' contract lists the grown cluster while the
  old ones keep theirs, the new hosts hold the same /srv/app, a host running since reset
  resolves the new names, and the new hosts answer (the operator started them).
- ``disk``: a runaway log filled kv1's disk; the timeline names it, the operator freed it.
- ``restore``: a crash truncated kv2's records to half and the store came back; the
  operator restored the 100 records from a backup.
"""

from __future__ import annotations

from typing import Any

from infragym.grading import LiveContext, PhaseScore


async def _answers(ctx: LiveContext, host: str) -> bool:
    status, body = await ctx.request(host, "/health")
    return status == 200 and body.decode() == host


async def grade_warmup(ctx: LiveContext) -> PhaseScore:
    ok = [await _answers(ctx, h) for h in ctx.cluster.names]
    return PhaseScore(float(all(ok)), {"healthy": float(all(ok))})


async def grade_capacity(ctx: LiveContext) -> PhaseScore:
    names = ctx.cluster.names
    peers = {h: ctx.env[h]["PEERS"].split(",") for h in names}
    app = (await ctx.run("kv4", "cat /srv/app/start.sh")).stdout.decode()
    resolved = (await ctx.run("kv1", "getent hosts kv4")).stdout.decode().split()
    parts = {
        "grown": float(names == ["kv1", "kv2", "kv3", "kv4"]),
        "contract": float(
            [p.split("=")[0] for p in peers["kv3"]] == ["kv1", "kv2", "kv3", "kv4"]
            and peers["kv4"] == peers["kv3"]
            and [p.split("=")[0] for p in peers["kv1"]] == ["kv1", "kv2"]
        ),
        "app": float("exec /usr/bin/python3 /srv/app/server.py" in app),
        "resolves": float(resolved[:2] == [ctx.cluster.host("kv4").address, "kv4"]),
        "serving": float(await _answers(ctx, "kv3") and await _answers(ctx, "kv4")),
        "role": float(ctx.variant.roles.get("kv") == ("kv1", "kv2", "kv3", "kv4")),
    }
    notes = [f"{h}: PEERS={','.join(peers[h])}" for h in names]
    return PhaseScore(sum(parts.values()) / len(parts), parts, notes)


def _events(ctx: LiveContext, kind: str, action: str) -> list[dict[str, Any]]:
    return [f for f in ctx.faults() if f["fault"] == kind and f["action"] == action]


async def grade_disk(ctx: LiveContext) -> PhaseScore:
    """The runaway log was applied on kv1 and the operator freed its disk (>= half free)."""
    (apply,) = _events(ctx, "runaway-log", "apply")
    df = (await ctx.run("kv1", "df --output=avail,size -B1 /srv/data | tail -1")).stdout
    avail, size = (int(x) for x in df.split())
    parts = {
        "applied": float(
            apply["targets"] == ["kv1"] and apply["detail"]["path"] == "/srv/data/store/debug.log"
        ),
        "freed": float(avail >= size // 2),
    }
    return PhaseScore(sum(parts.values()) / 2, parts, [f"kv1: {avail} of {size} bytes free"])


async def grade_restore(ctx: LiveContext) -> PhaseScore:
    """The crash damaged kv2's records (half kept), the store came back, and the operator
    restored the 100 records."""
    applied = _events(ctx, "damaged-data", "apply")
    # a damage the fault could not do (nothing matched, the damager failed) grades 0
    damaged = applied[0]["detail"].get("damaged", []) if len(applied) == 1 else []
    status, body = await ctx.request("kv2", "/count")
    parts = {
        "damaged": float(
            len(damaged) == 1
            and damaged[0]["path"] == "/srv/data/store/records.log"
            and damaged[0]["kept"] == damaged[0]["size"] // 2
        ),
        "back": float(await _answers(ctx, "kv2")),
        "restored": float(status == 200 and body == b"100"),
    }
    return PhaseScore(sum(parts.values()) / 3, parts, [f"kv2 holds {body!r} records"])
