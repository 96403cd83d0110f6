"""Hidden grader of oncall-shift: every phase is graded on the live cluster, by what the
system does now and what the recorded history shows, never by the commands typed.

- ``orientation``: the summary's ``data:``, ``quorum:`` and ``restart:`` lines, checked
  against the running nodes (their data file, their majority).
- ``disk``: the host the runaway log hit takes writes on its own disk again, has room,
  and the trigger (requests traced with large headers), sent until a bounded log stops
  growing, fills neither its data disk nor its scratch disk.
- ``capacity``: the added hosts serve, hold for every key acknowledged before the ticket
  that value or a later one, and the canaries (keys the grader planted before the
  ticket, which nothing writes again: later traffic cannot refill a node that never got
  its data), and a write through every node reaches every node.
- ``host``: the node whose data was damaged serves again and holds every key
  acknowledged before the crash (or newer) and every canary.
- ``change``: every node runs release 2 and holds the data, and the rollout never had a
  second in which most client requests failed (and few failed at all).
- ``postmortem``: the summary, judged against the nemesis's record of the disk incident
  and the impact measured from the history (unknown, so left out, with no judge).
- ``audit``: no acknowledged write lost (a gate), every node taking writes and holding
  every key's last value and every canary (read before the final reads repair
  anything), and the disk trigger harmless on every node.

Every check asks the node the ``service`` tool runs (``_genuine``: the port's listening
socket must belong to its process tree), never whatever else answers on the port.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import shlex
from datetime import UTC, datetime
from typing import Any

from infragym.grading import LiveContext, PhaseScore
from infragym.history import OpType
from infragym.judge import Judge, JudgeConfig, JudgeRubric, builtin_set, incident_truth
from infragym.nemesis import descends_from, listener_pids

PORT = 8080
SERVICE = "kvnode"  # [operate] service: what the service tool starts on each host
BURST = 160  # requests of the disk trigger, each traced with a HEADER-byte header
HEADER = 60_000
MAX_BURSTS = 8  # 8 x 9.6 MB: more than the scratch disk holds
CANARIES = 40  # keys the grader plants before a ticket that nothing writes again
WINDOW_S = 1.0  # the change's error windows: seconds in which most requests failed
RUBRIC = JudgeRubric.load(builtin_set("disk-full-postmortem") / "rubric.toml")
ROOT_CAUSE = (
    "kvnode's debug trace was on (the default kv.conf: debug = on, debug_log = "
    "/srv/data/log/debug.log, debug_log_max_bytes = 0): every request was appended to a log "
    "on {host}'s 16 MiB data disk with no rotation or size limit; the log grew until the disk "
    "was full, and every request to {host} failed with ENOSPC (the trace is written before a "
    "request is served)."
)


def _genuine(ctx: LiveContext, host: str) -> bool:
    """What listens on PORT on ``host`` is the node the service tool started (or a child
    of it), found as root from the kernel's tables: a process of the operator's own that
    listens there (a proxy, a copy of the node started by hand) is not a node."""
    h = ctx.cluster.host(host)
    h.reap()
    nodes = [p.pid for p in h.processes if p.name == SERVICE and p.alive()]
    owners = listener_pids(h, PORT, via=nodes[0]) if nodes else set()
    return bool(nodes and owners) and all(any(descends_from(o, n) for n in nodes) for o in owners)


async def _ask(
    ctx: LiveContext, host: str, path: str, method: str = "GET", body: bytes | None = None,
    timeout: float = 3.0,
) -> tuple[int, bytes]:  # fmt: skip
    """``ctx.request`` to the genuine node of ``host``; (0, b"") when the port is not the
    node's (nothing the grader believes comes from anything else)."""
    if not await asyncio.to_thread(_genuine, ctx, host):
        return 0, b""
    return await ctx.request(host, path, method, body, timeout=timeout)


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


async def _json(ctx: LiveContext, host: str, path: str) -> Any:
    status, body = await _ask(ctx, host, path, timeout=5.0)
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


def expected_values(ctx: LiveContext, before: float) -> dict[str, set[Any]]:
    """Per key acknowledged before ``before``, the values a node that lost nothing may
    hold: those of every acknowledged write that had not ended when the last write
    acknowledged before ``before`` began (that one included), and of every write of unknown
    outcome (it may have taken effect late). A node holding an older value, or none, lost
    an acknowledged write. Later writes only widen a key's set, so every key stays judged
    however long the operator takes (and the clients' later writes could refill a node
    that never got its data: the canaries, which nobody writes again, catch that)."""
    writes: dict[str, list[Any]] = {}
    for op in ctx.operations():
        if op.f == "write" and op.key:
            writes.setdefault(op.key, []).append(op)
    out = {}
    for key, ops in writes.items():
        acked = [op.invoke for op in ops if op.ok and op.complete < before]
        if acked:
            floor = max(acked)
            out[key] = {
                op.value
                for op in ops
                if (op.ok and op.complete >= floor) or op.outcome is OpType.INFO
            }
    return out


async def plant_canaries(ctx: LiveContext, name: str) -> dict[str, str]:
    """CANARIES keys the clients never touch, written through the nodes that take writes
    (one after the other); those acknowledged are recorded in the history's meta under
    ``name``: every node must hold them from then on, whoever joins or is restored later
    (nothing writes them again, so no later traffic can refill a node that lost them)."""
    writers = [h for h in ctx.cluster.names if await asyncio.to_thread(_genuine, ctx, h)]
    planted: dict[str, str] = {}
    for i in range(CANARIES if writers else 0):
        key, value = f"canary-{name}-{i}", secrets.token_hex(8)
        for w in writers[i % len(writers) :] + writers[: i % len(writers)]:
            status, _ = await _ask(ctx, w, f"/kv/{key}", "PUT", value.encode())
            if 200 <= status < 300:
                planted[key] = value
                break
    ctx.history.meta.setdefault("canaries", {})[name] = planted
    return planted


def _canaries(ctx: LiveContext, names: list[str] | None = None) -> dict[str, str]:
    sets = ctx.history.meta.get("canaries", {})
    return {k: v for n, c in sets.items() if names is None or n in names for k, v in c.items()}


async def _holds(
    ctx: LiveContext, hosts: list[str], before: float, canaries: dict[str, str] | None = None
) -> dict[str, float]:
    """Per host: the share of the keys acknowledged before ``before`` for which it holds
    an expected value and, with ``canaries``, the share of those it holds, whichever is
    less (0 when it does not answer, or when nothing was acknowledged by then: a service
    that never took a write shows no data)."""
    want = expected_values(ctx, before)
    out = {}
    for h in hosts:
        mine = await _values(ctx, h)
        if mine is None or not want:
            out[h] = 0.0
            continue
        share = sum(k in mine and mine[k] in vs for k, vs in want.items()) / len(want)
        if canaries:
            share = min(share, sum(mine.get(k) == v for k, v in canaries.items()) / len(canaries))
        out[h] = share
    return out


async def _writes_locally(ctx: LiveContext, host: str) -> bool:
    """A write through ``host`` is acknowledged and the host's own store took it."""
    key = f"oncall-probe-{secrets.token_hex(4)}"
    status, _ = await _ask(ctx, host, f"/kv/{key}", "PUT", b"probe")
    if not 200 <= status < 300:
        return False
    for _ in range(20):
        st, body = await _ask(ctx, host, f"/internal/{key}")
        if st == 200 and json.loads(body).get("v") == "probe":
            return True
        await asyncio.sleep(0.1)
    return False


DISKS = ("/srv/data", "/srv/logs")  # the data disk; the scratch disk (logs, etc, /tmp)


async def _df(ctx: LiveContext, host: str) -> dict[str, tuple[int, int]] | None:
    """(used, size) bytes of the host's data disk and of its scratch disk."""
    r = await ctx.run(host, f"df --output=used,size -B1 {' '.join(DISKS)} | tail -n +2")
    try:
        rows = [tuple(int(x) for x in line.split()) for line in r.stdout.splitlines()]
        return {d: (row[0], row[1]) for d, row in zip(DISKS, rows, strict=True)}
    except ValueError:
        return None


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
    """1 when the trigger can no longer fill a disk of ``host``: sent again and again
    (at most MAX_BURSTS times) until neither the data disk nor the scratch disk grows by
    half its bytes any more (a log bounded anywhere stops growing at its cap; one
    unbounded grows until the disk is full), with the data disk under 75 %, the scratch
    disk under 90 % and the host still taking writes on its own disk after."""
    first = prev = await _df(ctx, host)
    if first is None:
        return 0.0, f"{host}: no df"
    bounded, sent = False, 0
    while sent < MAX_BURSTS and not bounded:
        await _burst(ctx, host)
        sent += 1
        now = await _df(ctx, host)
        if now is None:
            return 0.0, f"{host}: no df"
        bounded = all(now[d][0] - prev[d][0] < BURST * HEADER // 2 for d in DISKS)
        prev = now
        if now["/srv/data"][0] >= now["/srv/data"][1] * 0.75:
            break
        if now["/srv/logs"][0] >= now["/srv/logs"][1] * 0.9:
            break
    serving = await _writes_locally(ctx, host)
    data, scratch = prev["/srv/data"], prev["/srv/logs"]
    ok = bounded and serving and data[0] < data[1] * 0.75 and scratch[0] < scratch[1] * 0.9
    grew = {d: (prev[d][0] - first[d][0]) >> 10 for d in DISKS}
    return float(ok), (
        f"{host}: the trigger sent {sent} time(s) grew its data disk by "
        f"{grew['/srv/data']} KiB and its scratch disk by {grew['/srv/logs']} KiB"
        f"{' and stopped growing' if bounded else ', still growing'}; data disk "
        f"{data[0] / data[1]:.0%}, scratch disk {scratch[0] / scratch[1]:.0%} used"
    ) + ("" if serving else "; it no longer takes writes on its own disk")


def _events(ctx: LiveContext, kind: str, action: str) -> list[dict[str, Any]]:
    return [f for f in ctx.faults() if f["fault"] == kind and f["action"] == action]


def _phase(ctx: LiveContext, name: str) -> dict[str, Any]:
    return next(p for p in ctx.history.meta.get("phases", []) if p["name"] == name)


# -- the phases --------------------------------------------------------------------------


def _field(summary: str, name: str) -> str:
    """The answer on the summary's ``name:`` line, as a list item or in bold too."""
    m = re.search(
        rf"^[\s>*•-]*\**\s*{name}\s*\**\s*:\s*\**\s*(.+)$", summary, re.IGNORECASE | re.MULTILINE
    )
    return m.group(1).strip() if m else ""


def data_answer(summary: str) -> str:
    """The first absolute path on the summary's ``data:`` line ('' if none)."""
    path = re.search(r"/[^\s`'\"*,;()]+", _field(summary, "data"))
    return path.group(0).rstrip(".:") if path else ""


_S = r"[\s-]+"  # "one at a time", "one-at-a-time"
RESTART_RE = re.compile(
    rf"one{_S}(?:(?:node|host|server|replica){_S})?at{_S}a{_S}time|one{_S}by{_S}one"
    rf"|one{_S}after{_S}(?:the{_S})?other|rolling|sequential|serially|staggered|in{_S}turn",
    re.IGNORECASE,
)
ALL_AT_ONCE_RE = re.compile(
    rf"\bat{_S}once\b|simultaneous|at{_S}the{_S}same{_S}time|in{_S}parallel|\btogether\b"
    r"|concurrent",
    re.IGNORECASE,
)
# an answer is read clause by clause; a phrase with one of these before it in its clause
# is denied ("not one at a time", "rather than all at once", "no two at the same time")
_CLAUSES = re.compile(r"[.,;:!?()\[\]\n]|\s[-\u2013\u2014]+\s|[\u2013\u2014]")
_DENIED_BEFORE = re.compile(
    r"\b(?:not|never|no|don'?t|avoid|without|than|instead|nor|neither|skip\w*)\b|n't\b",
    re.IGNORECASE,
)
_DENIED_AFTER = re.compile(  # "one at a time is not needed", "a rolling restart is overkill"
    r"(?:\bnot\b|n't\b|\bnever\b).*\b(?:need|needed|required|necessary|matter|help)"
    r"|\bunnecessary\b|\bno need\b|\bpointless\b|\boverkill\b|\bwrong\b",
    re.IGNORECASE,
)
# a clause about what an at-once restart would do is a reason, not the answer
_CONSEQUENCE = re.compile(
    r"\b(?:would|could|will|might|lose[sd]?|losing|risk\w*|break\w*|down|outage|quorum|fail\w*)\b",
    re.IGNORECASE,
)
_BARE_DENIAL = re.compile(r"^\s*(?:no|nope|never|not really|wrong)\s*$", re.IGNORECASE)


def restart_answer(text: str) -> bool:
    """Whether ``text`` states a rolling restart: a rolling phrase (``RESTART_RE``) or a
    denied restart of every node at once ("never all at once"), read clause by clause,
    neither denied in its clause (before it, or "... is not needed" after it, or a bare
    "no." as the next clause), and no restart at once stated as the way to do it (a
    clause about what one would break is a reason, not the answer)."""
    clauses = _CLAUSES.split(text)
    rolling = at_once = False
    for i, clause in enumerate(clauses):
        denied_next = i + 1 < len(clauses) and bool(_BARE_DENIAL.match(clauses[i + 1]))
        for m in RESTART_RE.finditer(clause):
            denied = (
                _DENIED_BEFORE.search(clause[: m.start()])
                or _DENIED_AFTER.search(clause[m.end() :])
                or denied_next
            )
            rolling = rolling or not denied
        for m in ALL_AT_ONCE_RE.finditer(clause):
            if _DENIED_BEFORE.search(clause[: m.start()]):
                rolling = True  # "never all at once", "no two nodes at the same time"
            elif not _CONSEQUENCE.search(clause) and not denied_next:
                at_once = True
    return rolling and not at_once


async def grade_orientation(ctx: LiveContext) -> PhaseScore:
    hosts = list(ctx.cluster.names)
    statuses = [await _json(ctx, h, "/admin/status") for h in hosts]
    files = {s["data_file"] for s in statuses if s}
    majorities = {s["majority"] for s in statuses if s}
    data = data_answer(ctx.summary)
    exists = [
        bool(data) and (await ctx.run(h, f"test -f {shlex.quote(data)}")).returncode == 0
        for h in hosts
    ]
    parts = {
        "data": float(files == {data} and all(exists)),
        "quorum": float(
            len(majorities) == 1
            and re.findall(r"\d+", _field(ctx.summary, "quorum"))[:1]
            == [str(next(iter(majorities)))]
        ),
        "restart": float(restart_answer(_field(ctx.summary, "restart"))),
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
    room = df is not None and df["/srv/data"][0] < df["/srv/data"][1] * 0.5
    recur, note = await _no_recurrence(ctx, host) if serving else (0.0, f"{host}: not serving")
    parts = {"serving": float(serving), "room": float(room), "no-recurrence": recur}
    score = parts["serving"] * (0.3 + 0.2 * parts["room"] + 0.5 * recur)
    planted = await plant_canaries(ctx, "capacity")  # the nodes to come must get them
    return PhaseScore(
        score, parts, [f"the runaway log hit {host}", note, f"{len(planted)} canaries planted"]
    )


async def _reaches_all(ctx: LiveContext, writer: str) -> bool:
    """A write through ``writer`` is acknowledged and, a second later, every node holds it."""
    key = f"oncall-join-{secrets.token_hex(4)}"
    status, _ = await _ask(ctx, writer, f"/kv/{key}", "PUT", b"join")
    if not 200 <= status < 300:
        return False
    await asyncio.sleep(1.0)
    for h in ctx.cluster.names:
        st, body = await _ask(ctx, h, f"/internal/{key}")
        if st != 200 or json.loads(body).get("v") != "join":
            return False
    return True


async def grade_capacity(ctx: LiveContext) -> PhaseScore:
    added = [h for g in ctx.history.meta.get("hosts_added", []) for h in g["hosts"]]
    serve = []
    for h in added:
        status, _ = await _ask(ctx, h, "/kv/k1")
        serve.append(await _writes_locally(ctx, h) and status in (200, 404))
    holds = await _holds(ctx, added, ctx.phase_started, _canaries(ctx))
    # a write through every node, old and new, reaches every node: all five replicate
    reached = [await _reaches_all(ctx, h) for h in ctx.cluster.names]
    parts = {
        "serving": sum(serve) / len(serve),
        "holds-data": min(holds.values()),
        "replicates": sum(reached) / len(reached),
    }
    score = 0.2 * parts["serving"] + 0.6 * parts["holds-data"] + 0.2 * parts["replicates"]
    notes = [f"{h} holds {v:.0%} of the keys" for h, v in holds.items()]
    planted = await plant_canaries(ctx, "host")  # before the crash the next ticket brings
    return PhaseScore(score, parts, [*notes, f"{len(planted)} canaries planted"])


async def grade_host(ctx: LiveContext) -> PhaseScore:
    (apply,) = _events(ctx, "damaged-data", "apply")
    host = apply["targets"][0]
    serving = await _writes_locally(ctx, host)
    held = (await _holds(ctx, [host], apply["time"], _canaries(ctx)))[host] if serving else 0.0
    parts = {"serving": float(serving), "holds-data": held}
    planted = await plant_canaries(ctx, "change")  # what the new release must keep
    return PhaseScore(
        held, parts,
        [f"{host}'s data was damaged; it holds {held:.0%} of the keys",
         f"{len(planted)} canaries planted"],
    )  # fmt: skip


def bad_seconds(ops: list[Any]) -> list[int]:
    """The windows (WINDOW_S each, by invocation, in order) with at least 3 of ``ops`` in
    which most failed."""
    buckets: dict[int, list[bool]] = {}
    for op in ops:
        buckets.setdefault(int(op.invoke // WINDOW_S), []).append(op.ok)
    return sorted(b for b, oks in buckets.items() if len(oks) >= 3 and sum(oks) < len(oks) / 2)


def _error_windows(ctx: LiveContext) -> tuple[int, float, int]:
    """The change phase's (seconds in which most requests failed, share failed, total)."""
    ops = [op for op in ctx.operations(since=ctx.phase_started) if math.isfinite(op.complete)]
    bad = len(bad_seconds(ops))
    failed = sum(not op.ok for op in ops)
    return bad, (failed / len(ops) if ops else 1.0), len(ops)


async def grade_change(ctx: LiveContext) -> PhaseScore:
    hosts = list(ctx.cluster.names)
    statuses = {h: await _json(ctx, h, "/admin/status") for h in hosts}
    released = [h for h, s in statuses.items() if s and s.get("release") == "2"]
    on_v2 = [h for h in released if str(statuses[h].get("data_file", "")).endswith("kv2/store.dat")]
    holds = await _holds(ctx, on_v2, ctx.phase_started, _canaries(ctx)) if on_v2 else {}
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


def outage(ops: list[Any], start: float, end: float) -> tuple[float, float]:
    """(how long the host was down, when it was restored) between ``start`` and ``end``:
    the first run of seconds with at least 3 requests in which most failed (gaps of up to
    2 s inside it are part of it; a later blip, a restart minutes after the fix, is not),
    its length and its end (``start`` if it never was down)."""
    bad = bad_seconds([op for op in ops if start <= op.invoke <= end])
    if not bad:
        return 0.0, start
    run = [bad[0]]
    for b in bad[1:]:
        if b - run[-1] > 3:
            break
        run.append(b)
    return (run[-1] - run[0] + 1) * WINDOW_S, (run[-1] + 1) * WINDOW_S


def incident(ctx: LiveContext) -> dict[str, Any]:
    """The disk incident's ground truth: the runaway log's events as recorded, the impact
    measured from the history on the host it hit during the disk phase, and when service
    came back (the end of the last second in which most of its requests failed: the heal
    event is only when the ticket was closed)."""
    (apply,) = _events(ctx, "runaway-log", "apply")
    host = apply["targets"][0]
    end = _phase(ctx, "disk").get("ended", math.inf)
    ops = [op for op in ctx.history.operations() if op.node == host]
    failed = [op for op in ops if apply["time"] <= op.invoke <= end and not op.ok]
    down_s, restored = outage(ops, apply["time"], end)
    impact = {
        "failed_writes": sum(op.f == "write" for op in failed),
        "failed_requests": len(failed),
        "unavailable_s": round(down_s, 1),
        "acknowledged_writes_lost": 0,
    }
    truth = incident_truth(
        ctx.history.faults, kinds=["runaway-log"], root_cause=ROOT_CAUSE.format(host=host),
        impact=impact, clock_zero=datetime.fromtimestamp(ctx.clock.wall0, UTC),
        restored_s=round(restored, 3),
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
    # before the final reads repair anything; every canary planted, on every node
    holds = await _holds(ctx, hosts, math.inf, _canaries(ctx))
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
