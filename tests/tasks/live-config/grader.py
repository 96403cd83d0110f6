"""Hidden grader of live-config, a live (``mode = "operate"``) test task on two hosts.

- ``greeting``: every host serves ``bonjour`` at ``GET /greeting`` now (0.5), its
  configuration file says so, so a restart keeps it (0.3), and the clients were served
  while it changed: the phase's availability, 0 at 90 %, full at 99 % (0.2).
- ``incident``: the incident's crash left the service down on one host (the nemesis
  recorded which); every host answers ``GET /health`` now (0.7) and the crashed host
  answered the clients again within 30 s of the crash, 0 at 120 s (0.3, only if restored).
- ``audit``: at the end every host is healthy and serves the declared greeting from its
  configuration (the share of those checks met).
"""

from __future__ import annotations

import math

from infragym.grading import LiveContext, PhaseScore

WANT = "bonjour"
PERSISTED = (
    "grep -Eq '^[[:space:]]*greeting[[:space:]]*=[[:space:]]*bonjour[[:space:]]*$' \"$CONF\""
)
PROMPT_S = (30.0, 120.0)


def _linear(x: float, zero: float, full: float) -> float:
    """0 at ``zero``, 1 at ``full``, linear between (either direction)."""
    if not math.isfinite(x):
        return 0.0
    t = (x - zero) / (full - zero)
    return min(1.0, max(0.0, t))


async def _serves(ctx: LiveContext, host: str, path: str, want: str) -> bool:
    status, body = await ctx.request(host, path)
    return status == 200 and body.decode("utf-8", "replace").strip() == want


async def _persisted(ctx: LiveContext, host: str) -> bool:
    return (await ctx.run(host, PERSISTED)).returncode == 0


async def grade_greeting(ctx: LiveContext) -> PhaseScore:
    hosts = ctx.cluster.names
    served = [await _serves(ctx, h, "/greeting", WANT) for h in hosts]
    persisted = [await _persisted(ctx, h) for h in hosts]
    ops = ctx.operations(since=ctx.phase_started)
    done = [op for op in ops if math.isfinite(op.complete)]
    availability = sum(op.ok for op in done) / len(done) if done else 0.0
    parts = {
        "served": sum(served) / len(hosts),
        "persisted": sum(persisted) / len(hosts),
        "availability": _linear(availability, 0.90, 0.99),
    }
    reward = 0.5 * parts["served"] + 0.3 * parts["persisted"] + 0.2 * parts["availability"]
    notes = [
        f"{h}: {'serves' if s else 'does not serve'} {WANT}, "
        f"{'persisted' if p else 'not in its configuration'}"
        for h, s, p in zip(hosts, served, persisted, strict=True)
    ] + [f"availability during the change: {availability:.2%} of {len(done)} requests"]
    return PhaseScore(reward, parts, notes)


async def grade_incident(ctx: LiveContext) -> PhaseScore:
    hosts = ctx.cluster.names
    crashes = [
        f for f in ctx.faults() if f["action"] == "apply" and f["label"].startswith("incident-")
    ]
    healthy = [await _serves(ctx, h, "/health", "ok") for h in hosts]
    restored = float(all(healthy))
    prompt = 0.0
    notes = [f"{h}: {'healthy' if ok else 'DOWN'}" for h, ok in zip(hosts, healthy, strict=True)]
    if crashes and restored:
        victim, at = crashes[0]["targets"][0], crashes[0]["time"]
        back = [op.complete for op in ctx.operations(since=at) if op.node == victim and op.ok]
        # healthy now but no client request answered yet: it came back by now at the latest
        took = (min(back) if back else ctx.clock.now()) - at
        prompt = _linear(took, PROMPT_S[1], PROMPT_S[0])
        notes.append(f"{victim} crashed at {at:.1f} s and answered again {took:.1f} s later")
    elif not crashes:
        notes.append("no crash was recorded in this phase")
    parts = {"restored": restored, "prompt": prompt}
    return PhaseScore(0.7 * restored + 0.3 * prompt, parts, notes)


async def audit(ctx: LiveContext) -> PhaseScore:
    hosts = ctx.cluster.names
    checks = {}
    for h in hosts:
        checks[f"{h}:healthy"] = await _serves(ctx, h, "/health", "ok")
        checks[f"{h}:greeting"] = await _serves(ctx, h, "/greeting", WANT)
        checks[f"{h}:persisted"] = await _persisted(ctx, h)
    score = sum(checks.values()) / len(checks)
    return PhaseScore(
        score,
        {k: float(v) for k, v in checks.items()},
        [f"audit: {sum(checks.values())} of {len(checks)} checks met"],
    )
