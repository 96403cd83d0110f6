"""Hidden grader of oncall-shift: every phase is graded on the live cluster, by what the
system does now and what the recorded history shows, never by the commands typed.

- ``orientation``: the summary's ``data:``, ``quorum:`` and ``restart:`` lines, checked
  against the running nodes (their data file, their majority).
- ``disk``: the host the runaway log hit takes writes on its own disk again, has room,
  and the trigger (requests traced with large headers) no longer grows its data disk.
- ``capacity``: the added hosts serve, hold the value of every key last written before
  the ticket (and not since), and a write through an old node and through a new one
  reaches every node.
- ``host``: the node whose data was damaged serves again and holds the value of every
  key last written before the crash (and not since).
- ``change``: every node runs release 2 and holds the data, and the rollout never had a
  second in which most client requests failed (and few failed at all).
- ``postmortem``: the summary, judged against the nemesis's record of the disk incident
  and the impact measured from the history (unknown, so left out, with no judge).
- ``audit``: no acknowledged write lost (a gate), every node taking writes and holding
  every key's last value (read before the final reads repair anything), and the disk
  trigger harmless on every node.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from infragym.grading import LiveContext, PhaseScore
from infragym.judge import Judge, JudgeConfig, JudgeRubric, builtin_set, incident_truth

PORT = 8080
BURST = 160  # requests of the disk trigger, each traced with a HEADER-byte header
HEADER = 60_000
WINDOW_S = 1.0  # the change's error windows: seconds in which most requests failed
RUBRIC = JudgeRubric.load(builtin_set("disk-full-postmortem") / "rubric.toml")
ROOT_CAUSE = (
    "kvnode's debug trace was on (the default kv.conf: debug = on, debug_log = "
    "/srv/data/log/debug.log, debug_log_max_bytes = 0): every request was appended to a log "
    "on {host}'s 16 MiB data disk with no rotation or size limit; the log grew until the disk "
    "was full, and every request to {host} failed with ENOSPC (the trace is written before a "
    "request is served)."
)


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


async def _json(ctx: LiveContext, host: str, path: str) -> Any:
    status, body = await ctx.request(host, path, timeout=5.0)
    if status != 200:
        return None
    try:
        if path == "/admin/dump":
            return [json.loads(x) for x in body.decode().splitlines() if x.strip()]
        return json.loads(body)
    except ValueError:
        return None


async def _values(ctx: LiveContext, host: str) -> dict[str, Any] | None:
    """The host's local value of every key (None: the node does not answer)."""
    dump = await _json(ctx, host, "/admin/dump")
    if dump is None:
        return None
    return {r["k"]: r["v"] for r in dump}


def stable_values(ctx: LiveContext, before: float) -> dict[str, Any]:
    """The keys the clients last wrote before ``before`` and never since, each with the
    value of that last write: acknowledged, and begun after every other write of the key
    ended (so no concurrent write may have won). Every node must hold these values."""
    writes: dict[str, list[Any]] = {}
    for op in ctx.operations():
        if op.f == "write" and op.key:
            writes.setdefault(op.key, []).append(op)
    out = {}
    for key, ops in writes.items():
        last = max(ops, key=lambda op: op.invoke)
        others = [op for op in ops if op is not last]
        if (
            last.invoke < before and last.ok
            and all(op.complete < last.invoke for op in others)
        ):  # fmt: skip
            out[key] = last.value
    return out


async def _holds(ctx: LiveContext, hosts: list[str], before: float) -> dict[str, float]:
    """Per host: the share of the keys stable since ``before`` whose value it holds."""
    want = stable_values(ctx, before)
    out = {}
    for h in hosts:
        mine = await _values(ctx, h)
        if mine is None or not want:
            out[h] = 0.0
            continue
        out[h] = sum(mine.get(k) == v for k, v in want.items()) / len(want)
    return out


async def _writes_locally(ctx: LiveContext, host: str) -> bool:
    """A write through ``host`` is acknowledged and the host's own store took it."""
    key = f"oncall-probe-{secrets.token_hex(4)}"
    status, _ = await ctx.request(host, f"/kv/{key}", "PUT", b"probe", timeout=3.0)
    if not 200 <= status < 300:
        return False
    for _ in range(20):
        st, body = await ctx.request(host, f"/internal/{key}", timeout=3.0)
        if st == 200 and json.loads(body).get("v") == "probe":
            return True
        await asyncio.sleep(0.1)
    return False


async def _df(ctx: LiveContext, host: str) -> tuple[int, int] | None:
    """(used, size) bytes of the host's data disk."""
    r = await ctx.run(host, "df --output=used,size -B1 /srv/data | tail -1")
    try:
        used, size = (int(x) for x in r.stdout.split())
    except ValueError:
        return None
    return used, size


async def _burst(ctx: LiveContext, host: str) -> None:
    """BURST requests to ``host``, each with a HEADER-byte header, as a client that
    attaches a large trace context would send them (the trigger of the disk incident)."""
    address = ctx.cluster.host(host).address
    pad = "x" * HEADER

    async def one() -> None:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(address, PORT), 2.0)
            w.write(
                f"GET /kv/k0 HTTP/1.1\r\nHost: {host}\r\nX-Trace-Context: {pad}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await w.drain()
            await asyncio.wait_for(r.read(), 3.0)
            w.close()
        except (OSError, TimeoutError):
            pass

    async def all_of() -> None:
        sem = asyncio.Semaphore(8)

        async def limited() -> None:
            async with sem:
                await one()

        await asyncio.gather(*(limited() for _ in range(BURST)))

    await asyncio.to_thread(ctx.cluster.run_client, all_of)


async def _no_recurrence(ctx: LiveContext, host: str) -> tuple[float, str]:
    """1 when the trigger no longer fills ``host``'s data disk: its usage grows by less
    than half the traced bytes and the host still takes writes on its own disk after."""
    before = await _df(ctx, host)
    await _burst(ctx, host)
    after = await _df(ctx, host)
    if before is None or after is None:
        return 0.0, f"{host}: no df"
    grew = after[0] - before[0]
    serving = await _writes_locally(ctx, host)
    ok = grew < BURST * HEADER // 2 and serving and after[0] < after[1] * 0.75
    return float(ok), f"{host}: the trigger grew its data disk by {grew >> 10} KiB" + (
        "" if serving else "; it no longer takes writes on its own disk"
    )


def _events(ctx: LiveContext, kind: str, action: str) -> list[dict[str, Any]]:
    return [f for f in ctx.faults() if f["fault"] == kind and f["action"] == action]


def _phase(ctx: LiveContext, name: str) -> dict[str, Any]:
    return next(p for p in ctx.history.meta.get("phases", []) if p["name"] == name)


# -- the phases --------------------------------------------------------------------------


def _field(summary: str, name: str) -> str:
    m = re.search(rf"^\s*{name}\s*:\s*(.+)$", summary, re.IGNORECASE | re.MULTILINE)
    return m.group(1).strip() if m else ""


async def grade_orientation(ctx: LiveContext) -> PhaseScore:
    hosts = list(ctx.cluster.names)
    statuses = [await _json(ctx, h, "/admin/status") for h in hosts]
    files = {s["data_file"] for s in statuses if s}
    majorities = {s["majority"] for s in statuses if s}
    data = _field(ctx.summary, "data").strip("`'\" ")
    exists = [(await ctx.run(h, f"test -f {json.dumps(data)}")).returncode == 0 for h in hosts]
    parts = {
        "data": float(files == {data} and all(exists)),
        "quorum": float(
            len(majorities) == 1
            and re.findall(r"\d+", _field(ctx.summary, "quorum"))[:1]
            == [str(next(iter(majorities)))]
        ),
        "restart": float(
            bool(
                re.search(
                    r"one (node )?at a time|one by one|one after (the )?other",
                    _field(ctx.summary, "restart"),
                    re.IGNORECASE,
                )
            )
        ),
    }
    score = 0.4 * parts["data"] + 0.3 * parts["quorum"] + 0.3 * parts["restart"]
    return PhaseScore(score, parts, [f"data files {sorted(files)}, majority {majorities}"])


async def grade_disk(ctx: LiveContext) -> PhaseScore:
    (apply,) = _events(ctx, "runaway-log", "apply")
    host = apply["targets"][0]
    # the log fills the disk within a second of starting: grade what it left
    await asyncio.sleep(max(0.0, apply["time"] + 3.0 - ctx.clock.now()))
    serving = await _writes_locally(ctx, host)
    df = await _df(ctx, host)
    room = df is not None and df[0] < df[1] * 0.5
    recur, note = await _no_recurrence(ctx, host) if serving else (0.0, f"{host}: not serving")
    parts = {"serving": float(serving), "room": float(room), "no-recurrence": recur}
    score = parts["serving"] * (0.3 + 0.2 * parts["room"] + 0.5 * recur)
    return PhaseScore(score, parts, [f"the runaway log hit {host}", note])


async def grade_capacity(ctx: LiveContext) -> PhaseScore:
    added = [h for g in ctx.history.meta.get("hosts_added", []) for h in g["hosts"]]
    old = [h for h in ctx.cluster.names if h not in added]
    serve = []
    for h in added:
        serve.append(await _writes_locally(ctx, h))
        status, _ = await ctx.request(h, "/kv/k1", timeout=3.0)
        serve[-1] = serve[-1] and status in (200, 404)
    holds = await _holds(ctx, added, ctx.phase_started)
    reached = []  # a write through an old node, then a new one, reaches every node
    for writer in (old[0], added[-1]):
        got = []
        key = f"oncall-join-{secrets.token_hex(4)}"
        status, _ = await ctx.request(writer, f"/kv/{key}", "PUT", b"join", timeout=3.0)
        await asyncio.sleep(1.0)
        for h in ctx.cluster.names:
            st, body = await ctx.request(h, f"/internal/{key}", timeout=3.0)
            got.append(st == 200 and json.loads(body).get("v") == "join")
        reached.append(200 <= status < 300 and all(got))
    parts = {
        "serving": sum(serve) / len(serve),
        "holds-data": min(holds.values()),
        "replicates": sum(reached) / len(reached),
    }
    score = 0.2 * parts["serving"] + 0.6 * parts["holds-data"] + 0.2 * parts["replicates"]
    return PhaseScore(score, parts, [f"{h} holds {v:.0%} of the keys" for h, v in holds.items()])


async def grade_host(ctx: LiveContext) -> PhaseScore:
    (apply,) = _events(ctx, "damaged-data", "apply")
    host = apply["targets"][0]
    serving = await _writes_locally(ctx, host)
    held = (await _holds(ctx, [host], apply["time"]))[host] if serving else 0.0
    parts = {"serving": float(serving), "holds-data": held}
    return PhaseScore(held, parts, [f"{host}'s data was damaged; it holds {held:.0%} of the keys"])


def _error_windows(ctx: LiveContext) -> tuple[int, float, int]:
    """The change phase's (seconds in which most requests failed, share failed, total)."""
    ops = [op for op in ctx.operations(since=ctx.phase_started) if math.isfinite(op.complete)]
    buckets: dict[int, list[bool]] = {}
    for op in ops:
        buckets.setdefault(int(op.invoke // WINDOW_S), []).append(op.ok)
    bad = sum(1 for b in buckets.values() if len(b) >= 3 and sum(b) < len(b) / 2)
    failed = sum(not op.ok for op in ops)
    return bad, (failed / len(ops) if ops else 1.0), len(ops)


async def grade_change(ctx: LiveContext) -> PhaseScore:
    hosts = list(ctx.cluster.names)
    statuses = {h: await _json(ctx, h, "/admin/status") for h in hosts}
    released = [h for h, s in statuses.items() if s and s.get("release") == "2"]
    on_v2 = [h for h in released if str(statuses[h].get("data_file", "")).endswith("kv2/store.dat")]
    holds = await _holds(ctx, on_v2, ctx.phase_started) if on_v2 else {}
    windows, failed, total = _error_windows(ctx)
    share = len(on_v2) / len(hosts)
    parts = {
        "release-2": share,
        "holds-data": min(holds.values()) if len(on_v2) == len(hosts) else 0.0,
        "no-error-window": float(windows == 0) * _clamp((0.20 - failed) / 0.15),
    }
    score = share * (0.4 * parts["holds-data"] + 0.6 * parts["no-error-window"])
    return PhaseScore(
        score, parts,
        [f"release 2 on {', '.join(on_v2) or 'no node'}; {windows} s with most requests failed,"
         f" {failed:.1%} of {total} requests failed during the change"],
    )  # fmt: skip


def incident(ctx: LiveContext) -> dict[str, Any]:
    """The disk incident's ground truth: the runaway log's events as recorded, and the
    impact measured from the history on the host it hit during the disk phase."""
    (apply,) = _events(ctx, "runaway-log", "apply")
    host = apply["targets"][0]
    disk = _phase(ctx, "disk")
    ops = [
        op for op in ctx.history.operations()
        if op.node == host and apply["time"] <= op.invoke <= disk.get("ended", math.inf)
    ]  # fmt: skip
    failed = [op for op in ops if not op.ok]
    ends = [op.complete for op in failed if math.isfinite(op.complete)]
    unavailable = (max(ends) - min(op.invoke for op in failed)) if ends else 0.0
    impact = {
        "failed_writes": sum(op.f == "write" for op in failed),
        "failed_requests": len(failed),
        "unavailable_s": round(unavailable, 1),
        "acknowledged_writes_lost": 0,
    }
    truth = incident_truth(
        ctx.history.faults, kinds=["runaway-log"], root_cause=ROOT_CAUSE.format(host=host),
        impact=impact, clock_zero=datetime.fromtimestamp(ctx.clock.wall0, UTC),
    )  # fmt: skip
    return truth


async def grade_postmortem(ctx: LiveContext) -> PhaseScore:
    truth = incident(ctx)
    check = await Judge(RUBRIC, JudgeConfig.from_env()).check("postmortem", ctx.summary, truth)
    items = {
        k[5:]: float(v) for k, v in check.metrics.items() if k.startswith("item:") and v is not None
    }
    if check.verdict.value == "unknown":
        return PhaseScore(0.0, {}, [f"unknown: {check.explanation}"], unknown=True)
    return PhaseScore(check.score, items, [check.explanation, f"impact: {truth['impact']}"])


async def audit(ctx: LiveContext) -> PhaseScore:
    hosts = list(ctx.cluster.names)
    holds = await _holds(ctx, hosts, math.inf)  # before the final reads repair anything
    healthy = [await _writes_locally(ctx, h) for h in hosts]
    lost = await ctx.lost_writes()
    recur = [await _no_recurrence(ctx, h) for h in hosts]
    parts = {
        "no-lost-writes": float(lost.verdict.value == "pass"),
        "healthy": float(all(healthy)),
        "complete": min(holds.values()),
        "no-recurrence": sum(r for r, _ in recur) / len(recur),
    }
    score = parts["no-lost-writes"] * (
        0.3 * parts["healthy"] + 0.35 * parts["complete"] + 0.35 * parts["no-recurrence"]
    )
    notes = [f"lost writes: {lost.verdict.value}: {lost.explanation}"]
    notes += [n for _, n in recur]
    notes += [f"{h} does not take writes" for h, ok in zip(hosts, healthy, strict=True) if not ok]
    return PhaseScore(score, parts, notes)
