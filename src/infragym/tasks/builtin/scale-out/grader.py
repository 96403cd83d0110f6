"""Hidden grader of scale-out: a session service made to scale horizontally.

The cluster has every host the grading may use (``[topology.roles]``): one load balancer,
one state host and four application hosts, each application host with the variant's CPU
quota. The load balancer and the state host run ``start.sh`` from the start; an
application host runs it only while the grader uses it, and the grader says which are
live in ``LIVE_APPS_FILE`` on every host (written atomically: ``name=address`` lines).
Adding a host is starting it, waiting until it listens, then announcing it; removing one
is announcing it, waiting ``DRAIN_S``, then killing every process of it.

The grading: the functional gate on one application host, then for 1, 2 and 4 hosts a
step load (open loop, latency from the intended start) whose highest rate meeting the
p99 target with 99 % ok is the capacity at that size; then a live scale-out from 2 to 3
hosts and a scale-in back to 2 under a steady load. Correctness probes run throughout
(each answer's session token is verified), and every answer of every phase is checked
against the per-user counters' promise (:class:`SessionCheck`). The seed draws the
variant only; users and the workload's seed are fresh randomness. ``recheck(history)``
gives the same reward offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infragym.checkers import Checker, CheckResult, Verdict, check_all
from infragym.grading import (
    ExpectationFailed,
    GradeContext,
    GradeOutcome,
    HttpProbe,
    env_from_spec,
    finish,
    measured,
    not_run,
    record_functional,
    run_tests,
    wait_listening,
)
from infragym.grading import recheck as recheck_history
from infragym.history import History, Operation, OpType
from infragym.rubric import Criterion, RewardResult, Rubric, gate, linear
from infragym.sandbox import Cluster
from infragym.tasks import Variant, load_task
from infragym.workload import HttpCall, Op, Result, Runner, Stream, Target, status_outcome

TASK = load_task(Path(__file__).parent)
START_CMD = ("/bin/sh", "/srv/app/start.sh")
LIVE_FILE = "live-apps"  # in each host's /srv/data (LIVE_APPS_FILE)
LISTEN_S = 15.0
SIZES = (1, 2, 4)  # app hosts the capacity is measured at
SETTLE_S = 1.0  # after an announcement, before the load is measured
STEP_S = 2.5
STEP_FACTOR = 1.25
MAX_UP, MAX_DOWN = 7, 3  # steps up until one fails; down while the first fails
OK_SLO = 0.99  # a step passes with this share ok and its p99 under the target
OVERHEAD_S = 0.0008  # a request's CPU beyond the token on an app host (the calibration)
OP_TIMEOUT_S = 2.0
USERS = 48
PROBE_USERS = 6
PROBE_RATE = 4.0
CHANGE_LOAD = 0.6  # of the capacity at 2 hosts: the load through the live change
CHANGE_BEFORE_S, CHANGE_HOLD_S, CHANGE_AFTER_S = 2.0, 4.0, 3.0
JOIN_S = 2.0  # an announced host answers requests within this
DRAIN_S = 2.0  # from announcing a host's removal to killing it
OUT_S = 1.0  # from announcing a removal to the last new request it may get
EFFICIENCY_FLOOR, EFFICIENCY_FULL = 0.35, 0.7
ERRORS_FLOOR, ERRORS_FULL = 0.02, 0.004
STATIC_CAP = 0.4
LB_NODE = "lb"


@dataclass(frozen=True)
class Layout:
    """The variant's hosts by role and the contract's figures."""

    lb: str
    state: str
    apps: tuple[str, ...]
    port: int
    app_port: int
    key: bytes
    work: int
    cores: float
    p99_s: float

    @classmethod
    def of(cls, v: Variant) -> Layout:
        return cls(
            v.hosts_of("lb")[0],
            v.hosts_of("state")[0],
            v.hosts_of("app"),
            int(v["port"]),
            int(v["app_port"]),
            str(v["session_key"]).encode(),
            int(v["work"]),
            float(v["app_cores"]),
            float(v["p99_ms"]) / 1000,
        )

    def token(self, user: str, visits: int) -> str:
        return hashlib.pbkdf2_hmac("sha256", f"{user}:{visits}".encode(), self.key, self.work).hex()


# -- the session API as a workload -------------------------------------------------------


@dataclass(frozen=True)
class SessionClient:
    """``visit``: POST /users/<key>/visit; ``read``: GET /users/<key>. An ok answer's value
    is ``[visits, host]``, with a third item naming what was wrong with it: ``garbage``
    (no session body), ``wrong-user`` (another user's session), ``bad-token`` (a token
    that does not sign the answer: checked when ``layout`` is given)."""

    layout: Layout | None = None

    def encode(self, op: Op) -> HttpCall:
        if op.f == "visit":
            return HttpCall("POST", f"/users/{op.key}/visit", b"")
        return HttpCall("GET", f"/users/{op.key}")

    def decode(self, op: Op, status: int, body: bytes) -> Result:
        kind = status_outcome(status)
        if kind is not OpType.OK:
            return Result(kind, None, f"HTTP {status}")
        try:
            doc = json.loads(body[:4096])
            visits, host, user, tok = doc["visits"], doc["host"], doc["user"], doc["token"]
        except (ValueError, TypeError, KeyError):
            return Result(OpType.OK, [None, None, "garbage"])
        if not isinstance(visits, int) or not isinstance(host, str) or visits < 0:
            return Result(OpType.OK, [None, None, "garbage"])
        host = host[:32]
        if user != op.key:
            return Result(OpType.OK, [visits, host, "wrong-user"])
        if self.layout is not None and tok != self.layout.token(str(op.key), visits):
            return Result(OpType.OK, [visits, host, "bad-token"])
        return Result(OpType.OK, [visits, host])


@dataclass(frozen=True)
class Sessions:
    """Visits and reads (half each) of ``users`` in a seeded random order, sent to the
    ``targets`` in turn."""

    targets: tuple[Target, ...]
    users: tuple[str, ...]
    seed: int
    name: str
    client: SessionClient

    def ops(self) -> Iterator[Op]:
        rng = random.Random(self.seed)
        i = 0
        while True:
            f = "visit" if rng.random() < 0.5 else "read"
            yield Op(f, self.targets[i % len(self.targets)], key=rng.choice(self.users))
            i += 1

    def default_client(self) -> SessionClient:
        return self.client


# -- checks ----------------------------------------------------------------------------------


def session_ops(history: History, ids: tuple[int, int] | None = None) -> list[Operation]:
    return [
        op
        for op in history.operations()
        if op.f in ("visit", "read") and (ids is None or ids[0] <= op.id < ids[1])
    ]


@dataclass(frozen=True)
class SessionCheck:
    """Each user's count is one counter, whichever host answers: an ok answer is for the
    user asked (``wrong-user``), a session body signed right (``garbage``, ``bad-token``);
    two acknowledged visits never got the same count (a lost update, or counts kept per
    host); a count never exceeds the visits sent before it was answered (invented), and a
    read is never below a count acknowledged before it began (lost)."""

    name: str = "state"

    def check(self, history: History) -> CheckResult:
        by_user: dict[str, list[Operation]] = defaultdict(list)
        flags: dict[str, int] = defaultdict(int)
        judged = 0
        for op in session_ops(history):
            by_user[str(op.key)].append(op)
            if op.ok:
                judged += 1
                if isinstance(op.result, list) and len(op.result) > 2:
                    flags[str(op.result[2])] += 1
        dup = invented = lost = 0
        first: str | None = None
        for user, ops in by_user.items():
            visits = sorted(op.invoke for op in ops if op.f == "visit")
            seen: set[int] = set()
            acked = sorted(
                (op.complete, op.result[0])
                for op in ops
                if op.ok and op.f == "visit" and isinstance(op.result[0], int)
            )
            for op in ops:
                if (
                    not op.ok
                    or not isinstance(op.result, list)
                    or not isinstance(op.result[0], int)
                ):
                    continue
                n = op.result[0]
                sent = _count_le(visits, op.complete)
                if n > sent:
                    invented += 1
                    first = first or f"{user} answered {n} after {sent} visits were sent"
                if op.f == "visit":
                    if n in seen:
                        dup += 1
                        first = first or f"two visits of {user} both answered {n}"
                    seen.add(n)
                else:
                    floor = max((v for t, v in acked if t < op.invoke), default=0)
                    if n < floor:
                        lost += 1
                        first = first or f"{user} read {n} after a visit answered {floor}"
        bad = sum(flags.values()) + dup + invented + lost
        metrics = {"judged": judged, "duplicate": dup, "invented": invented, "lost": lost,
                   **{f"answers.{k}": v for k, v in flags.items()}}  # fmt: skip
        if judged == 0:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no session answered", judged=0)
        if bad:
            what = ", ".join(f"{v} {k}" for k, v in metrics.items() if k != "judged" and v)
            return CheckResult(
                self.name, Verdict.FAIL, 0.0,
                f"{bad} of {judged} answers break the per-user counters ({what}); first: "
                f"{first or next(iter(flags))}", metrics, judged=judged,
            )  # fmt: skip
        return CheckResult(
            self.name, Verdict.PASS, 1.0,
            f"{judged} answers over {len(by_user)} users all consistent", metrics, judged=judged,
        )  # fmt: skip


def _count_le(sorted_times: list[float], t: float) -> int:
    lo, hi = 0, len(sorted_times)
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_times[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo


def p99(ops: Sequence[Operation]) -> float:
    """The 99th percentile latency from intended start; a failed or unknown operation counts
    as infinitely late."""
    if not ops:
        return math.inf
    lat = sorted(op.latency if op.ok else math.inf for op in ops)
    return lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)]


def step_figures(history: History, ids: tuple[int, int], p99_s: float) -> dict[str, Any]:
    ops = [op for op in session_ops(history, ids) if str(op.key).startswith("u")]
    ok = sum(op.ok for op in ops) / len(ops) if ops else 0.0
    late = p99(ops)
    return {
        "ops": len(ops),
        "ok": round(ok, 4),
        "p99_s": round(late, 4) if math.isfinite(late) else None,
        "passed": bool(ops) and ok >= OK_SLO and late <= p99_s,
    }


def capacities(history: History, p99_s: float) -> dict[int, float]:
    """The highest passing step's rate at each size (0: none passed)."""
    out = {n: 0.0 for n in SIZES}
    for s in history.meta.get("steps") or []:
        fig = step_figures(history, (s["ids"][0], s["ids"][1]), p99_s)
        if fig["passed"]:
            out[int(s["hosts"])] = max(out[int(s["hosts"])], float(s["rate"]))
    return out


@dataclass(frozen=True)
class Capacity:
    """The capacity at each size and the scaling efficiency: the capacity at 4 hosts over
    4 times the best per-host capacity at 1 or 2 (so a service held back on one host gains
    nothing). ``capacity-1`` passes when one host served the lowest step."""

    p99_s: float
    name: str = "scaling"

    def check(self, history: History) -> CheckResult:
        caps = capacities(history, self.p99_s)
        steps = len(history.meta.get("steps") or [])
        per_host = max(caps[1], caps[2] / 2)
        eff = caps[4] / (4 * per_host) if per_host > 0 else 0.0
        metrics = {f"rate_{n}": round(r, 2) for n, r in caps.items()}
        metrics["efficiency"] = round(eff, 3)
        shown = ", ".join(f"{n} host{'s' * (n > 1)} {r:.1f}/s" for n, r in caps.items())
        verdict = Verdict.PASS if eff >= EFFICIENCY_FULL else Verdict.FAIL
        return CheckResult(
            "scaling", verdict, min(1.0, eff),
            f"capacity at p99 <= {self.p99_s * 1000:.0f} ms: {shown}; efficiency {eff:.2f}",
            metrics, judged=steps,
        )  # fmt: skip


@dataclass(frozen=True)
class OneHost:
    p99_s: float
    name: str = "capacity-1"

    def check(self, history: History) -> CheckResult:
        r1 = capacities(history, self.p99_s)[1]
        steps = sum(1 for s in history.meta.get("steps") or [] if s["hosts"] == 1)
        if r1 > 0:
            what = f"one host served {r1:.1f}/s"
            return CheckResult(self.name, Verdict.PASS, 1.0, what, {"rate": r1}, judged=steps)
        return CheckResult(
            self.name, Verdict.FAIL, 0.0,
            "one host met the p99 target at no step of the load", {"rate": 0.0}, judged=steps,
        )  # fmt: skip


@dataclass(frozen=True)
class Change:
    """The live scale-out (2 -> 3 hosts) and scale-in (back to 2) under load, from
    ``meta["change"]``: ``membership`` (the announced host answers within ``JOIN_S``, and
    gets no new request ``OUT_S`` after its removal was announced), ``change-errors``
    (the share of requests not ok over the change) and ``change-latency`` (their p99)."""

    p99_s: float

    def results(self, history: History) -> list[CheckResult]:
        meta = history.meta.get("change")
        if not isinstance(meta, dict) or "ids" not in meta:
            return [
                CheckResult(n, Verdict.UNKNOWN, 0.0, "no live change ran", judged=0)
                for n in ("membership", "change-errors", "change-latency")
            ]
        ids = (meta["ids"][0], meta["ids"][1])
        ops = [op for op in session_ops(history, ids) if str(op.key).startswith("u")]
        new, added, removed = meta["host"], meta.get("added"), meta.get("removed")
        served = [op for op in ops if op.ok and op.result[1:2] == [new]]
        joined = added is not None and any(
            op.intended >= added and op.complete <= added + JOIN_S for op in served
        )
        stale = sum(op.intended > removed + OUT_S for op in served) if removed is not None else 0
        problems = []
        if not joined:
            problems.append(f"{new} answered no request within {JOIN_S:g} s of its announcement")
        if stale:
            problems.append(f"{new} got {stale} new requests after its removal was announced")
        membership = CheckResult(
            "membership", Verdict.FAIL if problems else Verdict.PASS, 0.0 if problems else 1.0,
            "; ".join(problems) or f"{new} served {len(served)} requests between its "
            "announcement and its removal, none after", {"served": len(served),
            "stale": stale}, judged=2,
        )  # fmt: skip
        bad = sum(not op.ok for op in ops)
        frac = bad / len(ops) if ops else 1.0
        errors = CheckResult(
            "change-errors", Verdict.PASS if frac <= ERRORS_FULL else Verdict.FAIL, 1 - frac,
            f"{bad} of {len(ops)} requests not ok over the change",
            {"error_fraction": frac, "errors": bad}, judged=len(ops),
        )  # fmt: skip
        late = p99(ops)
        latency = CheckResult(
            "change-latency", Verdict.PASS if late <= self.p99_s else Verdict.FAIL,
            1.0 if late <= self.p99_s else 0.0,
            f"p99 {late * 1000:.0f} ms over the change (target {self.p99_s * 1000:.0f} ms)",
            {"p99_s": late if math.isfinite(late) else 1e9}, judged=len(ops),
        )  # fmt: skip
        return [membership, errors, latency]


@dataclass(frozen=True)
class ChangePart:
    change: Change
    name: str

    def check(self, history: History) -> CheckResult:
        return next(r for r in self.change.results(history) if r.name == self.name)


def checkers(p99_s: float) -> list[Checker]:
    change = Change(p99_s)
    return [
        SessionCheck(),
        OneHost(p99_s),
        Capacity(p99_s),
        *(ChangePart(change, n) for n in ("membership", "change-errors", "change-latency")),
    ]


def rubric(p99_s: float) -> Rubric:
    """Gates first, then weighted properties.

    - functional (gate, cap 0): the session API on one application host.
    - state (gate, cap 0): no answer breaks the per-user counters, on any number of hosts.
    - capacity-1 (gate, cap 0): one host meets the p99 target at the lowest step.
    - scaling (weight 5): efficiency, 0 at 0.35, full at 0.7 (a service that does not
      scale is at 0.25, a fair one over 0.8).
    - membership (gate, cap 0.4; weight 2): an announced host serves within 2 s, a removed
      one gets nothing new after 1 s.
    - change-errors (weight 2): requests not ok over the live change, 0 at 2 %, full at 0.4 %.
    - change-latency (weight 1): their p99 within the target.
    """
    return Rubric(
        [
            gate("functional"),
            gate("state", min_judged=200),
            gate("capacity-1", min_judged=1),
            Criterion(
                "scaling",
                weight=5.0,
                score_fn=linear(EFFICIENCY_FLOOR, EFFICIENCY_FULL, "efficiency"),
                min_judged=3,
            ),
            Criterion("membership", weight=2.0, gate=True, cap=STATIC_CAP, min_judged=1),
            Criterion(
                "change-errors",
                weight=2.0,
                score_fn=linear(ERRORS_FLOOR, ERRORS_FULL, "error_fraction"),
                min_judged=50,
            ),
            Criterion("change-latency", weight=1.0, min_judged=50),
        ]
    )


GATED = ("state", "capacity-1", "scaling", "membership", "change-errors", "change-latency")


# -- the deployment: hosts started, announced, removed --------------------------------------


class Fleet:
    """The cluster's hosts, which app hosts run, and the announcements."""

    def __init__(self, ctx: GradeContext, layout: Layout, cluster: Cluster) -> None:
        self.ctx, self.layout, self.cluster = ctx, layout, cluster
        env = env_from_spec(TASK.spec, ctx.variant)
        self.envs = {h.name: env(cluster, h) for h in cluster.hosts}
        self.live: list[str] = []
        self.events: list[dict[str, Any]] = []

    def announce(self, live: Sequence[str]) -> float:
        """Write the live app hosts on every host, each file replaced atomically."""
        self.live = list(live)
        text = "".join(f"{n}={self.cluster.host(n).address}\n" for n in live)
        for h in self.cluster.hosts:
            tmp = h.data_dir / f".{LIVE_FILE}.tmp"
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, h.data_dir / LIVE_FILE)
        t = self.ctx.clock.now()
        self.events.append({"t": round(t, 3), "live": list(live)})
        return t

    def start(self, name: str) -> str | None:
        host = self.cluster.host(name)
        proc = host.spawn("scale-out", list(START_CMD), env=dict(self.envs[name]))
        port = self.layout.port if name == self.layout.lb else self.layout.app_port
        return wait_listening(host, proc, port, LISTEN_S)

    def stop(self, name: str) -> None:
        self.cluster.host(name).kill_all()

    async def add(self, *names: str) -> list[str]:
        problems = await asyncio.gather(*(asyncio.to_thread(self.start, n) for n in names))
        if any(problems):
            return [p for p in problems if p]
        self.announce([*self.live, *names])
        return []

    async def remove(self, *names: str) -> float:
        t = self.announce([n for n in self.live if n not in names])
        await asyncio.sleep(DRAIN_S)
        await asyncio.gather(*(asyncio.to_thread(self.stop, n) for n in names))
        return t


async def bring_up(fleet: Fleet) -> list[str]:
    """The state host and the first app host, announced; then the load balancer."""
    lay = fleet.layout
    fleet.announce([])
    state = fleet.cluster.host(lay.state)
    state.spawn("scale-out", list(START_CMD), env=dict(fleet.envs[lay.state]))
    problems = await fleet.add(lay.apps[0])
    if not problems:
        problem = await asyncio.to_thread(fleet.start, lay.lb)
        problems = [problem] if problem else []
    return problems


# -- functional tests (through the load balancer, one app host) -------------------------------


def functional_tests(lay: Layout) -> list[tuple[str, Any]]:
    async def visits_count(p: HttpProbe) -> None:
        user = f"f{p.tag}-a"
        for n in (1, 2, 3):
            body = await p.expect_answer(LB_NODE, f"/users/{user}/visit", 200, method="POST")
            _expect_session(lay, body, user, n)
        _expect_session(lay, await p.expect_answer(LB_NODE, f"/users/{user}", 200), user, 3)

    async def users_apart(p: HttpProbe) -> None:
        a, b = f"f{p.tag}-b", f"f{p.tag}-c"
        await p.expect_answer(LB_NODE, f"/users/{a}/visit", 200, method="POST")
        _expect_session(lay, await p.expect_answer(LB_NODE, f"/users/{b}", 200), b, 0)
        _expect_session(lay, await p.expect_answer(LB_NODE, f"/users/{a}", 200), a, 1)

    async def not_found(p: HttpProbe) -> None:
        await p.expect_answer(LB_NODE, f"/nothing-{p.tag}", 404)
        await p.expect_answer(LB_NODE, "/users/NOT%20A%20USER", 404)

    return [("visits-count", visits_count), ("users-apart", users_apart), ("not-found", not_found)]


def _expect_session(lay: Layout, body: bytes, user: str, visits: int) -> None:
    value = SessionClient(lay).decode(Op("read", Target(LB_NODE, "http://x"), key=user), 200, body)
    got = value.value
    if got[2:] or got[0] != visits:
        raise ExpectationFailed(
            f"/users/{user}: expected {visits} visits with a valid token, got "
            f"{body[:200].decode('utf-8', 'replace')!r}"
        )


async def functional(lay: Layout, url: str) -> dict[str, str | None]:
    async with HttpProbe.open({LB_NODE: url}, request_s=3.0) as probe:
        late = await probe.ready("/health", 10.0)
        if late:
            return {"lb-answers": f"nothing answered at the load balancer ({url}) within 10 s"}
        return await run_tests(functional_tests(lay), probe, per_test_s=8.0, total_s=20.0)


# -- the load ------------------------------------------------------------------------------------


class Load:
    """Runs the load phases against the load balancer and records them in the history."""

    def __init__(self, ctx: GradeContext, layout: Layout, cluster: Cluster, url: str) -> None:
        self.ctx, self.layout, self.cluster = ctx, layout, cluster
        self.target = Target(LB_NODE, url)
        tag = secrets.token_hex(3)
        self.users = tuple(f"u{tag}-{i}" for i in range(USERS))
        self.probe_users = tuple(f"p{tag}-{i}" for i in range(PROBE_USERS))
        self.seed = secrets.randbits(32)
        ctx.history.meta["workload_seed"] = self.seed
        self.runs = 0

    def streams(self, rate: float, duration: float, apps: Sequence[str]) -> list[Stream]:
        """The load at the load balancer; the probes (tokens verified) at it and straight
        at each of ``apps`` in turn (the state is the same whichever host answers)."""
        self.runs += 1
        lay = self.layout
        load = Sessions((self.target,), self.users, self.seed + self.runs, f"load{self.runs}",
                        SessionClient())  # fmt: skip
        direct = tuple(
            Target(a, f"http://{self.cluster.host(a).address}:{lay.app_port}") for a in apps
        )
        probe = Sessions((self.target, *direct), self.probe_users, self.seed - self.runs,
                         f"probe{self.runs}", SessionClient(lay))  # fmt: skip
        return [
            Stream(load, rate=rate, duration=duration, timeout=OP_TIMEOUT_S),
            Stream(probe, rate=PROBE_RATE, duration=duration, timeout=OP_TIMEOUT_S),
        ]

    async def run(self, rate: float, duration: float, apps: Sequence[str]) -> tuple[int, int]:
        """One run at ``rate`` for ``duration`` s, probing ``apps`` directly too; the range
        of its operation ids."""
        first = max((e.id for e in self.ctx.history.ops), default=-1) + 1
        streams = self.streams(rate, duration, apps)

        async def go() -> None:
            async with Runner(self.ctx.history, self.ctx.clock, transport="lean") as runner:
                await runner.run(*streams)

        with measured(self.cluster):
            await asyncio.to_thread(self.cluster.run_client, go)
        last = max((e.id for e in self.ctx.history.ops), default=-1) + 1
        return first, last


def per_host_estimate(lay: Layout) -> float:
    """What one app host should serve at its quota: its cores over a request's CPU (the
    token, timed here, plus a fixed overhead)."""
    t = min(_time_token(lay) for _ in range(3))
    return lay.cores / (t + OVERHEAD_S)


def _time_token(lay: Layout) -> float:
    t0 = time.perf_counter()
    lay.token("calibration", 1)
    return time.perf_counter() - t0


async def ladder(load: Load, hosts: int, start: float, apps: Sequence[str]) -> float:
    """Steps up by ``STEP_FACTOR`` from ``start`` until one fails twice (the first failure
    is tried once more), or down while the first fails; the highest passing rate (0: none)."""
    lay, meta = load.layout, load.ctx.history.meta.setdefault("steps", [])
    best, rate, down, retried = 0.0, start, 0, False
    for _ in range(MAX_UP + MAX_DOWN + 1):
        ids = await load.run(rate, STEP_S, apps)
        fig = step_figures(load.ctx.history, ids, lay.p99_s)
        meta.append({"hosts": hosts, "rate": round(rate, 2), "ids": list(ids), **fig})
        load.ctx.progress(
            f"{hosts} host(s) at {rate:.1f}/s: ok {fig['ok']:.3f}, p99 {fig['p99_s']} s"
        )
        if fig["passed"]:
            best = rate
            if down:
                break
            rate *= STEP_FACTOR
            continue
        if best > 0 and not retried:
            retried = True  # once, after a pause: a burst of the shared machine's
            await asyncio.sleep(OP_TIMEOUT_S)
            continue
        if best > 0 or down >= MAX_DOWN:
            break
        down += 1
        rate /= STEP_FACTOR
        await asyncio.sleep(OP_TIMEOUT_S)  # the backlog of an overload drains
    await asyncio.sleep(OP_TIMEOUT_S if not fig["passed"] else 0.0)
    return round(best, 2)


async def measure(fleet: Fleet, load: Load) -> dict[int, float]:
    lay = fleet.layout
    est = per_host_estimate(lay)
    load.ctx.history.meta["per_host_estimate"] = round(est, 2)
    rates: dict[int, float] = {}
    start = 0.6 * est
    for n in SIZES:
        if n > len(fleet.live):
            problems = await fleet.add(*lay.apps[len(fleet.live) : n])
            if problems:
                raise RuntimeError("; ".join(problems))
            await asyncio.sleep(SETTLE_S)
        rates[n] = await ladder(load, n, start, list(fleet.live))
        start = max(start, rates[n])
        if SessionCheck().check(load.ctx.history).verdict is Verdict.FAIL:
            break  # the state gate has failed: nothing left to measure can count
    return rates


async def live_change(fleet: Fleet, load: Load, rate: float) -> None:
    lay, clock = fleet.layout, fleet.ctx.clock
    new = lay.apps[2]
    meta: dict[str, Any] = {"host": new, "rate": round(rate, 2)}
    fleet.ctx.history.meta["change"] = meta
    duration = CHANGE_BEFORE_S + CHANGE_HOLD_S + DRAIN_S + CHANGE_AFTER_S + 2.0

    async def change() -> None:
        await asyncio.sleep(CHANGE_BEFORE_S)
        problems = await fleet.add(new)
        if problems:
            meta["problem"] = "; ".join(problems)
            return
        meta["added"] = round(clock.now(), 3)
        await asyncio.sleep(CHANGE_HOLD_S)
        meta["removed"] = round(await fleet.remove(new), 3)

    ids, _ = await asyncio.gather(load.run(rate, duration, fleet.live[:2]), change())
    meta["ids"] = list(ids)


async def grade(ctx: GradeContext) -> GradeOutcome:
    lay = Layout.of(ctx.variant)
    ctx.progress(f"building 1 load balancer, 1 state host and {len(lay.apps)} app hosts")
    cluster = ctx.cluster()
    fleet = Fleet(ctx, lay, cluster)
    ctx.history.meta["layout"] = {"apps": list(lay.apps), "p99_s": lay.p99_s}
    problems = await bring_up(fleet)
    url = f"http://{cluster.host(lay.lb).address}:{lay.port}"
    tests: dict[str, str | None] = {}
    if not problems:
        ctx.progress("functional tests through the load balancer, one app host")
        tests = await asyncio.to_thread(cluster.run_client, lambda: functional(lay, url))
    notes = list(problems) + [f"functional test {n} failed: {e}" for n, e in tests.items() if e]
    result = record_functional(ctx.history, tests, "; ".join(problems) if problems else None)
    if result.verdict is not Verdict.PASS:
        results = {"functional": result, **not_run("the functional contract failed", GATED)}
        return finish(rubric(lay.p99_s), results, result.score, notes)
    load = Load(ctx, lay, cluster, url)
    rates = await measure(fleet, load)
    notes.append("capacity: " + ", ".join(f"{n} hosts {r:.1f}/s" for n, r in rates.items()))
    if len(rates) < len(SIZES):
        notes.append("a user's state was broken: the rest of the load did not run")
        results = await asyncio.to_thread(check_all, checkers(lay.p99_s), ctx.history)
        results["functional"] = result
        return finish(rubric(lay.p99_s), results, result.score, notes)
    await fleet.remove(*lay.apps[2:4])
    await asyncio.sleep(SETTLE_S)
    change_rate = max(CHANGE_LOAD * rates[2], 0.5 * load.ctx.history.meta["per_host_estimate"])
    ctx.progress(f"live scale-out 2 -> 3 -> 2 hosts at {change_rate:.1f}/s")
    await live_change(fleet, load, change_rate)
    ctx.history.meta["announcements"] = fleet.events
    results = await asyncio.to_thread(check_all, checkers(lay.p99_s), ctx.history)
    results["functional"] = result
    return finish(rubric(lay.p99_s), results, result.score, notes)


def recheck(history: History, budget_s: float = 20.0) -> RewardResult:
    """The reward of a stored history, offline, with the p99 target it recorded."""
    del budget_s
    meta = history.meta.get("layout") or {}
    p99_s = float(meta.get("p99_s", Layout.of(TASK.spec.variant()).p99_s))
    return recheck_history(history, lambda: checkers(p99_s), rubric(p99_s))
