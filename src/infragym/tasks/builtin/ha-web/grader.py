"""Hidden grader of ha-web: a highly available web tier at one virtual IP.

The variant's load balancers (role ``lb``: net_admin hosts, they may own the VIP) and
application hosts (role ``app``), built by ``ctx.cluster()`` from ``[topology.roles]``, run
``/bin/sh /srv/app/start.sh`` with the contract's environment (``[contract.env]``; the VIP
is the subnet's address ``vip_host``: what the dev hosts get); each must listen (load
balancers on ``PORT``, app hosts on ``APP_PORT``) within 15 s. Functional tests through
the VIP gate the reward; then open-loop ``GET /whoami`` at the VIP from the client
namespace (and a light probe of each load balancer's own address) through a full sweep:
every host crashed, then every host paused, then every host isolated, one at a time.
Meanwhile every load balancer's addresses are polled (from outside the hosts) to catch two
of them holding the VIP at once. Then the checks of :func:`checkers` and :func:`rubric`.
``recheck(history)`` gives the same reward offline. The seed draws the variant only (the
sweep has no randomness); the tests' tag and the workload's seed are fresh randomness.

Hosts are addressed by role alone (:class:`Tier`, from ``ctx.variant.hosts_of``).
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infragym.checkers import (
    Availability,
    Checker,
    CheckResult,
    Verdict,
    check_all,
    failover_time,
    faulted_hosts,
)
from infragym.grading import (
    ExpectationFailed,
    GradeContext,
    GradeOutcome,
    HttpProbe,
    ProbeTest,
    StartAt,
    env_from_spec,
    finish,
    load_under_faults,
    not_run,
    record_functional,
    run_tests,
    wait_listening,
)
from infragym.grading import recheck as recheck_history
from infragym.history import FaultAction, History
from infragym.nemesis import Nemesis, Schedule, sweep_schedule
from infragym.rubric import Criterion, RewardResult, Rubric, gate, linear
from infragym.sandbox import Cluster
from infragym.tasks import Variant, load_task
from infragym.workload import (
    HttpCall,
    Op,
    RequestClient,
    RequestGenerator,
    Result,
    Runner,
    Stream,
    Target,
    parse_targets,
    status_result,
)

TASK = load_task(Path(__file__).parent)
START_CMD = ("/bin/sh", "/srv/app/start.sh")
LISTEN_S = 15.0
RATE = 40.0  # requests per second at the VIP
DIRECT_RATE = 4.0  # per load balancer, at its own address
OP_TIMEOUT_S = 1.0
FAULT_S, GAP_S, START_S = 3.5, 2.0, 3.0
TAIL_S = 7.0  # load after the last heal: the last host must come back in it
POLL_S = 0.2  # how often every load balancer's addresses are read
ONE_HOLDER_POLLS = 5  # the functional phase's last test: one holder of the VIP, 5 reads
HEAL_GRACE_S = 2.0  # after a heal two masters may meet for an advert or two
EJECT_S = 2.0  # a dead or frozen backend stops getting requests within this
EJECT_FAST_S = 0.2  # ... so answers come within this again (not after a connect timeout)
BACK_AFTER_S, BACK_SPAN_S = 3.0, 3.0  # a healed host serves again in this span after heal
SERVING_SLO = 0.95
FAILOVER_SLO = 0.9  # "answering again": a 1 s span at this SLO
NO_SPOF_FLOOR = 0.2
NAIVE_CAP = 0.25
SPLIT_BRAIN_CAP = 0.1
NO_EJECTION_CAP = 0.5
VIP_NODE = "vip"


# -- addressing: the tier's roles and where clients reach the service -------------------


@dataclass(frozen=True)
class Tier:
    """The variant's hosts by role (``[topology.roles]``), and the service's ports."""

    lbs: tuple[str, ...]
    apps: tuple[str, ...]
    port: int
    app_port: int
    failover_s: float

    @classmethod
    def of(cls, v: Variant) -> Tier:
        return cls(
            v.hosts_of("lb"),
            v.hosts_of("app"),
            int(v["port"]),
            int(v["app_port"]),
            float(v["failover_s"]),
        )

    def sweep_order(self) -> list[str]:
        """Load balancers and app hosts alternately, so a host has another's fault to
        recover in before the next of its role."""
        order: list[str] = []
        for i in range(max(len(self.lbs), len(self.apps))):
            order += [r[i] for r in (self.lbs, self.apps) if i < len(r)]
        return order

    def port_of(self, host: str) -> int:
        return self.port if host in self.lbs else self.app_port


def contract_envs(variant: Variant, cluster: Cluster) -> dict[str, dict[str, str]]:
    """Each host's environment by the task's ``[contract.env]`` (what the dev hosts get)."""
    env = env_from_spec(TASK.spec, variant)
    return {h.name: env(cluster, h) for h in cluster.hosts}


def vip_of(cluster: Cluster, envs: Mapping[str, Mapping[str, str]]) -> str:
    """The contract's VIP (the same on every host), which no endpoint of ``cluster`` holds."""
    vip = {e["VIP"] for e in envs.values()}
    if len(vip) != 1 or next(iter(vip)) not in cluster.free_addresses():
        raise RuntimeError(f"the VIP {', '.join(sorted(vip))} is not one free address")
    return vip.pop()


# -- the load ------------------------------------------------------------------------------


class WhoAmIClient(RequestClient):
    """``GET /whoami``: ok with the answering backend's name as the operation's value."""

    __slots__ = ()

    def encode(self, op: Op) -> HttpCall:
        return HttpCall("GET", "/whoami")

    def decode(self, op: Op, status: int, body: bytes) -> Result:
        return status_result(status, body[:64].decode("utf-8", "replace"))


@dataclass(frozen=True)
class WhoAmI:
    """Reads of ``/whoami`` at one target (the VIP), recorded as ``read`` operations so the
    history keeps which backend answered each."""

    target: Target
    name: str = "vip"

    def ops(self) -> Iterator[Op]:
        while True:
            yield Op("read", self.target, key="/whoami")

    def default_client(self) -> WhoAmIClient:
        return WhoAmIClient()


def workload(vip_url: str, lb_urls: Mapping[str, str], duration: float) -> list[Stream]:
    vip = parse_targets({VIP_NODE: vip_url})
    direct = RequestGenerator(parse_targets(lb_urls), path="/whoami", name="lb-direct")
    return [
        Stream(WhoAmI(vip[0]), rate=RATE, duration=duration, timeout=OP_TIMEOUT_S),
        Stream(direct, rate=DIRECT_RATE * len(lb_urls), duration=duration, timeout=OP_TIMEOUT_S),
    ]


# -- functional tests (through the VIP) --------------------------------------------------


async def t_root(p: HttpProbe) -> None:
    await p.expect_answer(VIP_NODE, "/", 200, contains=b"hello from ")


async def t_echo(p: HttpProbe) -> None:
    body = (p.tag + " ✓ " + "0123456789abcdef" * 4096).encode()[:65536]
    await p.expect_answer(VIP_NODE, "/echo", 200, method="POST", body=body, equals=body)


async def t_not_found(p: HttpProbe) -> None:
    await p.expect_answer(VIP_NODE, f"/no-such-page-{p.tag}", 404)


def t_every_app(apps: Sequence[str]) -> ProbeTest:
    async def test(p: HttpProbe) -> None:
        seen: set[str] = set()
        for _ in range(8 * len(apps)):
            status, body = await p.get(VIP_NODE, "/whoami")
            if status == 200:
                seen.add(body.decode("utf-8", "replace"))
        missing = sorted(set(apps) - seen)
        if missing:
            raise ExpectationFailed(
                f"{8 * len(apps)} requests at the VIP never reached {', '.join(missing)} "
                f"(answered by: {', '.join(sorted(seen)) or 'none'})"
            )

    return test


def t_one_holder(cluster: Cluster, lbs: Sequence[str], vip: str) -> ProbeTest:
    async def test(p: HttpProbe) -> None:
        for _ in range(ONE_HOLDER_POLLS):
            holders = await asyncio.to_thread(vip_holders, cluster, lbs, vip)
            if len(holders) != 1:
                raise ExpectationFailed(
                    f"the VIP {vip} is held by {' and '.join(holders) or 'no load balancer'}; "
                    "exactly one load balancer must hold it"
                )
            await asyncio.sleep(POLL_S)

    return test


def functional_tests(tier: Tier, cluster: Cluster, vip: str) -> list[tuple[str, ProbeTest]]:
    return [
        ("root-through-vip", t_root),
        ("every-app-host-serves", t_every_app(tier.apps)),
        ("post-body-through-vip", t_echo),
        ("not-found-passes-through", t_not_found),
        ("one-load-balancer-holds-the-vip", t_one_holder(cluster, tier.lbs, vip)),
    ]


# -- the VIP's holders -------------------------------------------------------------------


def vip_holders(cluster: Cluster, lbs: Sequence[str], vip: str) -> list[str]:
    """The load balancers whose interfaces hold ``vip`` now (read from the machine's side,
    so a paused or crashed host is read as well)."""
    holders = []
    for name in lbs:
        ns = cluster.host(name).port.netns
        out = subprocess.run(
            ["ip", "-n", ns, "-o", "-4", "addr", "show"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        ).stdout
        if any(f" {vip}/" in line for line in out.splitlines()):
            holders.append(name)
    return holders


async def poll_vip(
    cluster: Cluster, lbs: Sequence[str], vip: str, ctx: GradeContext, stop: asyncio.Event
) -> list[tuple[float, list[str]]]:
    polls: list[tuple[float, list[str]]] = []
    while not stop.is_set():
        t = ctx.clock.now()
        holders = await asyncio.to_thread(vip_holders, cluster, lbs, vip)
        polls.append((round(t, 3), holders))
        with_timeout = asyncio.wait_for(stop.wait(), POLL_S)
        try:
            await with_timeout
        except TimeoutError:
            pass
    return polls


# -- checks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitBrain:
    """No instant at which two load balancers hold the VIP. Reads the polls of
    ``history.meta["vip_polls"]``; a host the fault of that moment took away (crashed,
    paused, isolated) is not counted while it lasts, nor is the ``grace_s`` after a heal
    (two masters meet then and one yields)."""

    grace_s: float = HEAL_GRACE_S
    name: str = "split-brain"

    def check(self, history: History) -> CheckResult:
        polls = history.meta.get("vip_polls") or []
        windows = history.fault_windows()
        details = {
            (e.label, e.time): e.detail for e in history.faults if e.action is FaultAction.APPLY
        }
        judged = both = 0
        first: str | None = None
        for t, holders in polls:
            if any(w.end <= t < w.end + self.grace_s for w in windows):
                continue
            away: set[str] = set()
            for w in windows:
                if w.contains(t):
                    away |= faulted_hosts(w.fault, w.targets, details.get((w.label, w.start), {}))
            counted = [h for h in holders if h not in away]
            judged += 1
            if len(counted) > 1:
                both += 1
                first = first or f"{' and '.join(counted)} at {t:.1f} s"
        metrics = {"polls": len(polls), "judged": judged, "split": both}
        if both:
            return CheckResult(
                self.name, Verdict.FAIL, 0.0,
                f"two load balancers held the VIP at once in {both} of {judged} polls "
                f"(first: {first})", metrics, judged=judged,
            )  # fmt: skip
        return CheckResult(
            self.name, Verdict.PASS, 1.0,
            f"never two holders of the VIP in {judged} polls", metrics, judged=judged,
        )  # fmt: skip


def failovers(history: History, fast_s: float | None = None) -> dict[str, float | None]:
    """Each fault window's failover time at the VIP: from the fault's start to the first
    second in which 90 % of the requests meant to start then were answered ok (and, with
    ``fast_s``, within ``fast_s`` of their intended start); None if never in the window."""
    reads = [op for op in history.operations() if op.f == "read"]
    out: dict[str, float | None] = {}
    for w in history.fault_windows():
        served = [
            (op.intended, op.ok and (fast_s is None or op.latency <= fast_s))
            for op in reads
            if w.contains(op.intended)
        ]
        out[w.label] = failover_time(w.start, w.end, served, FAILOVER_SLO)
    return out


@dataclass(frozen=True)
class Failover:
    """Fraction of the fault windows (those of ``hosts``, default all) in which the VIP
    answered at ``FAILOVER_SLO`` again within ``within_s`` of the fault's start; with
    ``fast_s``, only answers within ``fast_s`` count (a backend still tried, each request
    waiting for a connect timeout before going elsewhere, is not taken out of rotation)."""

    within_s: float
    name: str = "failover"
    hosts: tuple[str, ...] | None = None
    fast_s: float | None = None

    def check(self, history: History) -> CheckResult:
        figures = failovers(history, self.fast_s)
        if self.hosts is not None:
            figures = {k: v for k, v in figures.items() if k.split("-", 1)[-1] in self.hosts}
        if not figures:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no fault windows", judged=0)
        late = {k: v for k, v in figures.items() if v is None or v > self.within_s}
        shown = ", ".join(f"{k} {'never' if v is None else f'{v:.2f} s'}" for k, v in late.items())
        metrics = {f"{k}.failover_s": v for k, v in figures.items()}
        score = 1 - len(late) / len(figures)
        verdict = Verdict.PASS if not late else Verdict.FAIL
        n = len(figures)
        fast = "" if self.fast_s is None else f" (answers within {self.fast_s:g} s)"
        what = f"{n - len(late)} of {n} windows answered again{fast} within {self.within_s:g} s"
        return CheckResult(
            self.name, verdict, score, what + (f"; late: {shown}" if late else ""), metrics,
            judged=len(figures),
        )  # fmt: skip


@dataclass(frozen=True)
class BackToStrength:
    """After each heal, the healed host serves again: an app host answers requests at the
    VIP, a load balancer answers at its own address, between ``after_s`` and
    ``after_s + span_s`` after the heal. Score: the fraction of heals it did."""

    apps: tuple[str, ...]
    lbs: tuple[str, ...]
    after_s: float = BACK_AFTER_S
    span_s: float = BACK_SPAN_S
    name: str = "back-to-strength"

    def check(self, history: History) -> CheckResult:
        ops = history.operations()
        judged, missing = 0, []
        for w in history.fault_windows():
            host = w.label.split("-", 1)[-1]
            lo, hi = w.end + self.after_s, w.end + self.after_s + self.span_s
            if not math.isfinite(w.end) or host not in (*self.apps, *self.lbs):
                continue
            judged += 1
            if host in self.apps:
                back = any(
                    op.ok and op.f == "read" and op.result == host and lo <= op.intended < hi
                    for op in ops
                )
            else:
                back = any(op.ok and op.node == host and lo <= op.intended < hi for op in ops)
            if not back:
                missing.append(w.label)
        if not judged:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no heals to judge", judged=0)
        score = 1 - len(missing) / judged
        return CheckResult(
            self.name, Verdict.PASS if not missing else Verdict.FAIL, score,
            f"{judged - len(missing)} of {judged} healed hosts served again "
            f"{self.after_s:g}-{self.after_s + self.span_s:g} s after the heal"
            + (f"; not after {', '.join(missing)}" if missing else ""),
            {"heals": judged, "not_back": len(missing)}, judged=judged,
        )  # fmt: skip


def checkers(tier: Tier) -> list[Checker]:
    return [
        Availability(slo=SERVING_SLO, scope="steady", f="read", name="serving"),
        Availability(slo=NO_SPOF_FLOOR, scope="faults", f="read", name="no-spof"),
        Availability(slo=FAILOVER_SLO, f="read", name="availability"),
        SplitBrain(),
        Failover(tier.failover_s),
        Failover(EJECT_S, name="ejection", hosts=tier.apps, fast_s=EJECT_FAST_S),
        BackToStrength(tier.apps, tier.lbs),
    ]


def rubric() -> Rubric:
    """Gates first, then weighted properties.

    - functional (gate, cap 0): every functional test passes through the VIP.
    - serving (gate, cap 0): outside fault windows >= 95 % of requests at the VIP are ok.
    - no-spof (gate, cap 0.25): in every fault window >= 20 % are ok: a tier with one
      load balancer (or a VIP only one host can hold) serves ~0 % while that host is away.
    - split-brain (gate, cap 0.1): two load balancers never hold the VIP at once.
    - ejection (gate, cap 0.5; weight 2): in every app host's fault window the VIP answers
      90 % of requests ok within 0.2 s again within 2 s of the fault: the dead or frozen
      backend is out of rotation, not tried by each request until a timeout sends it on.
    - failover (weight 3): the fraction of fault windows answered at 90 % again within the
      variant's failover target.
    - availability (weight 2): requests at the VIP answered ok over the whole load, 0 at
      75 %, full at 97 %.
    - back-to-strength (weight 2): the fraction of healed hosts serving again 3-6 s after
      their heal.
    """
    return Rubric(
        [
            gate("functional"),
            gate("serving", min_judged=100),
            gate("no-spof", cap=NAIVE_CAP, min_judged=100),
            gate("split-brain", cap=SPLIT_BRAIN_CAP, min_judged=50),
            Criterion("ejection", weight=2.0, gate=True, cap=NO_EJECTION_CAP, min_judged=2),
            Criterion("failover", weight=3.0, min_judged=4),
            Criterion(
                "availability",
                weight=2.0,
                score_fn=linear(0.75, 0.97, "availability"),
                min_judged=500,
            ),
            Criterion("back-to-strength", weight=2.0, min_judged=4),
        ]
    )


GATED = (
    "serving",
    "no-spof",
    "split-brain",
    "ejection",
    "failover",
    "availability",
    "back-to-strength",
)


# -- the grading -----------------------------------------------------------------------------


async def deploy(tier: Tier, cluster: Cluster, envs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Start the contract's command on every host; why hosts did not listen in time."""
    procs = {
        h.name: h.spawn("ha-web", list(START_CMD), env=dict(envs[h.name]), service=True)
        for h in cluster.hosts
    }
    waits = (
        asyncio.to_thread(wait_listening, h, procs[h.name], tier.port_of(h.name), LISTEN_S)
        for h in cluster.hosts
    )
    return [p for p in await asyncio.gather(*waits) if p]


async def functional(tier: Tier, cluster: Cluster, vip: str) -> dict[str, str | None]:
    vip_url = f"http://{vip}:{tier.port}"
    async with HttpProbe.open({VIP_NODE: vip_url}, request_s=2.0) as probe:
        late = await probe.ready("/", 10.0)
        if late:
            return {"vip-answers": f"nothing answered at the VIP ({vip_url}) within 10 s"}
        return await run_tests(
            functional_tests(tier, cluster, vip), probe, per_test_s=8.0, total_s=30.0
        )


async def under_faults(
    ctx: GradeContext, tier: Tier, cluster: Cluster, vip: str, schedule: Schedule, notes: list[str]
) -> dict[str, CheckResult]:
    (ctx.artifacts_dir / "schedule.json").write_text(json.dumps(schedule.to_json(), indent=2))
    seed = secrets.randbits(63)  # recorded; the load itself draws nothing from it
    ctx.history.meta["workload_seed"] = seed
    vip_url = f"http://{vip}:{tier.port}"
    lb_urls = {n: f"http://{cluster.host(n).address}:{tier.port}" for n in tier.lbs}
    duration = schedule.end + TAIL_S
    streams = workload(vip_url, lb_urls, duration)

    async def load(start_at: StartAt) -> None:
        async with Runner(ctx.history, ctx.clock) as runner:
            await runner.run(*streams, at=await start_at())

    stop = asyncio.Event()
    poller = asyncio.create_task(poll_vip(cluster, tier.lbs, vip, ctx, stop))
    ctx.progress(
        f"load for {duration:.0f} s at the VIP through a sweep of {len(schedule.faults)} faults"
    )
    try:
        async with Nemesis(cluster, ctx.history, ctx.clock) as nemesis:
            await load_under_faults(cluster, nemesis, schedule, ctx.clock, load)
    finally:  # the polls are recorded whatever ended the load
        stop.set()
        polls = ctx.history.meta["vip_polls"] = await poller
    ops = ctx.history.operations()
    notes.append(
        f"workload: {len(ops)} operations, {sum(op.ok for op in ops)} ok; {len(polls)} VIP polls"
    )
    ctx.progress("checking the history")
    return await asyncio.to_thread(check_all, checkers(tier), ctx.history)


async def grade(ctx: GradeContext) -> GradeOutcome:
    tier = Tier.of(ctx.variant)
    ctx.progress(f"building {len(tier.lbs)} load balancers and {len(tier.apps)} app hosts")
    cluster = ctx.cluster()  # each host with its role's resources; the lbs with net_admin
    envs = contract_envs(ctx.variant, cluster)
    vip = vip_of(cluster, envs)
    ctx.history.meta["tier"] = {
        "lbs": list(tier.lbs), "apps": list(tier.apps), "vip": vip, "failover_s": tier.failover_s
    }  # fmt: skip
    schedule = sweep_schedule(tier.sweep_order(), fault_s=FAULT_S, gap_s=GAP_S, start=START_S)
    problems = await deploy(tier, cluster, envs)
    notes = list(problems)
    tests: dict[str, str | None] = {}
    if not problems:
        ctx.progress("functional tests through the VIP")
        tests = await asyncio.to_thread(cluster.run_client, lambda: functional(tier, cluster, vip))
        notes += [f"functional test {n} failed: {e}" for n, e in tests.items() if e]
    result = record_functional(ctx.history, tests, "; ".join(problems) if problems else None)
    (ctx.artifacts_dir / "functional.json").write_text(
        json.dumps({"score": result.score, "tests": tests}, indent=2, ensure_ascii=False)
    )
    if result.verdict is not Verdict.PASS:
        results = {"functional": result, **not_run("the functional contract failed", GATED)}
        return finish(rubric(), results, result.score, notes)
    results = await under_faults(ctx, tier, cluster, vip, schedule, notes)
    results["functional"] = result
    return finish(rubric(), results, result.score, notes)


def recheck(history: History, budget_s: float = 20.0) -> RewardResult:
    """The reward of a stored history, offline: the tier the grading recorded (else the
    default variant's), the same checks and rubric."""
    del budget_s  # no check here searches
    tier = Tier.of(TASK.spec.variant())
    meta = history.meta.get("tier")
    if isinstance(meta, dict):
        tier = Tier(tuple(meta["lbs"]), tuple(meta["apps"]), tier.port, tier.app_port,
                    float(meta["failover_s"]))  # fmt: skip
    return recheck_history(history, lambda: checkers(tier), rubric())
