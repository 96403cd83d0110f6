"""Hidden grader of kv-replicated: functional tests, then load under faults, then verdicts.

1. Deploy: ``/bin/sh /srv/app/start.sh`` as a service on each of 3 fresh hosts with the
   contract's environment; each must listen on 8080 within 10 s (a start.sh that exits
   fails at once) and answer a read within 10 s more.
2. Functional phase, no faults: the tests an agent can write against its dev hosts
   (writes visible on every node within 1 s, 404, overwrites, odd keys and values).
   Its score is the fraction passed; anything short of all of them is a failed gate and
   the robustness phase is skipped (a system that breaks its contract earns nothing).
3. Robustness phase: open-loop reads and writes on a small hot keyspace, plus one write
   to each of a few cold keys before the first fault, while a seeded nemesis crashes,
   pauses and partitions hosts one at a time: every run has two faults of each kind,
   crashes two different hosts (so data must survive on disk, not only in a peer's
   memory) and takes every host away at least once (so no host can be a single point of
   failure on a lucky seed). After the final heal every node must listen again; then
   every key is read on every node.
4. Verdicts and rubric: see ``rubric``. ``recheck(history)`` gives the same reward from
   a stored history offline (``infragym check``).

The seed only chooses the fault schedule. Nothing the service receives depends on it:
the functional tests' values carry a fresh random token and the workload is drawn from a
fresh random seed, recorded in the history's meta (``workload_seed``) and in
``workload.json``, so a service cannot recognise its run and learn a seed's schedule.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

import aiohttp

from infragym.checkers import (
    Availability,
    Checker,
    CheckResult,
    Linearizable,
    LostWrites,
    StaleReads,
    Verdict,
    check_all,
)
from infragym.grading import (
    ExpectationFailed,
    GradeContext,
    GradeOutcome,
    deploy,
    functional_result,
    not_run,
    read_capped,
    run_tests,
    wait_all_listening,
)
from infragym.history import History, OpType
from infragym.nemesis import FaultSpec, Nemesis, Schedule, ScheduledFault
from infragym.rubric import Criterion, RewardResult, Rubric
from infragym.sandbox import Cluster, Host
from infragym.workload import (
    KVClient,
    KVGenerator,
    Mix,
    Op,
    Runner,
    Stream,
    Target,
    final_read_stream,
    parse_targets,
)

PORT = 8080
HOSTS = 3
START_CMD = ("/bin/sh", "/srv/app/start.sh")
DATA_DIR = "/srv/data"
LISTEN_S = 10.0
READY_S = 10.0
VISIBLE_S = 1.0
REQUEST_S = 1.0
TEST_S = 6.0
FUNCTIONAL_S = 30.0

RATE = 60.0
OP_TIMEOUT_S = 1.0
HOT_KEYS = 12
COLD_KEYS = 12
FIRST_FAULT_S = 2.0
FAULT_S = (1.8, 2.6)
GAP_S = (0.8, 1.2)
TAIL_S = 1.5
SETTLE_S = 2.0

AVAILABILITY_SLO = 0.99
AVAILABILITY_FLOOR = 0.5
SERVING_SLO = 0.9
FAILOVER_FLOOR = 0.5
NAIVE_CAP = 0.25
CHECK_BUDGET_S = 20.0


# -- rubric -----------------------------------------------------------------------------


def _all_or_nothing(r: CheckResult) -> float:
    return 1.0 if r.verdict is Verdict.PASS else 0.0


def _availability_score(r: CheckResult) -> float:
    """Worst window's availability, 0 at the floor and 1 at the SLO, linear between."""
    worst = r.metrics.get("worst_availability")
    if not isinstance(worst, int | float):
        return 0.0
    x = (float(worst) - AVAILABILITY_FLOOR) / (AVAILABILITY_SLO - AVAILABILITY_FLOOR)
    return min(1.0, max(0.0, x))


def rubric() -> Rubric:
    """Gates first: the contract, serving at all, no single point of failure,
    linearizability; then weighted properties.

    - functional (gate, cap 0): every functional test passes, or the reward is 0.
    - serving (gate, cap 0): outside fault windows at least 90 % of requests are answered
      ok; a service that passes the functional tests and then refuses everything has
      shown nothing (its consistency checks would pass vacuously) and earns nothing.
    - no-spof (gate, cap 0.25): in every fault window the hosts the fault left healthy
      answer at least 50 % ok. Every host is taken away at least once per run, so a
      service whose data or leadership lives on one host fails this whatever the seed:
      it is not fault tolerant and earns at most what an inconsistent one does.
    - linearizable (gate, cap 0.25; weight 2): the task asks for linearizable reads and
      writes; a system that can return stale or lost data earns at most 0.25 however
      available it is (an inconsistent but available system is worth more than a broken
      one, much less than a correct one).
    - lost-writes (weight 3, all or nothing): any acknowledged write missing from every
      final read fails the property the task is about; one lost write is not 99% durable.
    - stale-reads (weight 1, fraction of clean reads): graded partial credit for the
      subset of consistency failures that need no search.
    - availability (weight 4): ok fraction of the operations sent to hosts the fault left
      healthy (crashed and paused hosts and the partitioned-off minority are not judged),
      in the worst fault window or steady state; 0 at 50 %, full at 99 %. Operations not
      answered within 1 s count as unavailable.

    Every check must have judged something (``min_judged``): linearizability and stale
    reads need ok operations and reads, lost writes acknowledged writes with a final read.
    """
    return Rubric(
        [
            Criterion("functional", weight=0.0, gate=True, cap=0.0),
            Criterion("serving", weight=0.0, gate=True, cap=0.0, min_judged=50),
            Criterion("no-spof", weight=0.0, gate=True, cap=NAIVE_CAP, min_judged=50),
            Criterion("linearizable", weight=2.0, gate=True, cap=NAIVE_CAP, min_judged=50),
            Criterion("lost-writes", weight=3.0, score_fn=_all_or_nothing, min_judged=COLD_KEYS),
            Criterion("stale-reads", weight=1.0, min_judged=20),
            Criterion("availability", weight=4.0, score_fn=_availability_score, min_judged=50),
        ]
    )


def checkers(budget_s: float = CHECK_BUDGET_S) -> list[Checker]:
    """The checks of the robustness phase, by the names :func:`rubric` reads."""
    return [
        Linearizable(time_budget_s=budget_s),
        LostWrites(),
        StaleReads(),
        Availability(slo=AVAILABILITY_SLO, exclude_faulted=True),
        Availability(slo=SERVING_SLO, scope="steady", name="serving"),
        Availability(slo=FAILOVER_FLOOR, scope="faults", exclude_faulted=True, name="no-spof"),
    ]


def recheck(history: History, budget_s: float = CHECK_BUDGET_S) -> RewardResult:
    """The reward of a stored history, offline: the same checks and rubric as :func:`grade`.

    The functional tests' outcome is read from the history's ``meta["functional"]`` (the
    grader records it there); a history without it is judged unknown on that gate.
    """
    return rubric().score(results_of(history, budget_s))


def results_of(history: History, budget_s: float) -> dict[str, CheckResult]:
    recorded = history.meta.get("functional")
    if isinstance(recorded, dict) and isinstance(recorded.get("tests"), dict):
        tests = {str(k): None if v is None else str(v) for k, v in recorded["tests"].items()}
        problem = recorded.get("problem")
        functional = functional_result(tests, None if problem is None else str(problem))
    else:
        functional = CheckResult(
            "functional",
            Verdict.UNKNOWN,
            0.0,
            "the history does not record the functional tests (meta['functional'])",
            judged=0,
        )
    if functional.verdict is not Verdict.PASS:
        return {
            "functional": functional,
            **not_run("the functional contract failed", ROBUSTNESS_CHECKS),
        }
    results = check_all(checkers(budget_s), history)
    results["functional"] = functional
    return results


# -- fault schedule ---------------------------------------------------------------------


def fault_schedule(seed: int, hosts: list[str]) -> Schedule:
    """Two crashes (of different hosts), two pauses, two partitions, in a seeded order,
    and every host taken away (crashed, paused or cut off) at least once.

    Faults come one at a time with a quiet gap between, so every availability window
    measures one fault; each kind appears in every run so every seed measures the same
    properties (and the reward's spread across seeds stays small). Every host is a victim
    in every run, so no seed spares the one host a single point of failure lives on.
    A pure function of the seed and the host names.
    """
    rng = random.Random(f"kv-replicated/{seed}")
    kinds: list[str] = []
    for _ in range(2):
        round_ = ["crash", "pause", "partition"]
        rng.shuffle(round_)
        kinds += round_
    topologies = [rng.choice(TOPOLOGIES) if k == "partition" else "" for k in kinds]
    victims = _victims(rng, kinds, topologies, hosts)
    faults: list[ScheduledFault] = []
    t = FIRST_FAULT_S
    for i, kind in enumerate(kinds):
        duration = round(rng.uniform(*FAULT_S), 3)
        if kind in ("crash", "pause"):
            spec = FaultSpec(kind, (victims[i][0],))
        elif topologies[i] == "isolate":
            spec = FaultSpec("partition", (victims[i][0],), (("topology", "isolate"),))
        else:
            rest = [h for h in hosts if h not in victims[i]]
            rng.shuffle(rest)
            # majority: the first len//2 hosts are the minority, cut off from the rest
            spec = FaultSpec("partition", (*victims[i], *rest), (("topology", topologies[i]),))
        faults.append(ScheduledFault(round(t, 3), duration, spec, f"{kind}-{i + 1}"))
        t += duration + rng.uniform(*GAP_S)
    return Schedule(tuple(faults), seed)


TOPOLOGIES = ("isolate", "majority", "bridge")


def taken_away(kind: str, topology: str, hosts: int) -> int:
    """How many hosts one fault takes away by its victims (a bridge: none for certain)."""
    if kind in ("crash", "pause") or topology == "isolate":
        return 1
    return hosts // 2 if topology == "majority" else 0


def _victims(
    rng: random.Random, kinds: list[str], topologies: list[str], hosts: list[str]
) -> list[tuple[str, ...]]:
    """Each fault's victims (a bridge's are only its order), covering every host.

    Every host is first given one victim slot, the remaining slots are drawn at random,
    and the two crashes never hit the same host.
    """
    sizes = [taken_away(k, t, len(hosts)) for k, t in zip(kinds, topologies, strict=True)]
    if sum(sizes) < len(hosts):
        for i, t in enumerate(topologies):
            if t == "bridge" and sum(sizes) < len(hosts):
                topologies[i] = "isolate"
                sizes[i] = 1
    if sum(sizes) < len(hosts):
        raise ValueError(f"{len(kinds)} faults cannot take away each of {len(hosts)} hosts")
    units = [i for i, n in enumerate(sizes) for _ in range(n)]
    rng.shuffle(units)
    picked: list[list[str]] = [[] for _ in kinds]
    order = list(hosts)
    rng.shuffle(order)
    for slot, host in zip(units, order, strict=False):
        picked[slot].append(host)
    crashed = {h for i, k in enumerate(kinds) if k == "crash" for h in picked[i]}
    for slot in units[len(order) :]:
        taken = set(picked[slot]) | (crashed if kinds[slot] == "crash" else set())
        host = rng.choice([h for h in hosts if h not in taken])
        picked[slot].append(host)
        if kinds[slot] == "crash":
            crashed.add(host)
    for i, t in enumerate(topologies):
        if t == "bridge":
            picked[i] = [rng.choice(hosts)]
    return [tuple(p) for p in picked]


# -- workload ---------------------------------------------------------------------------


class ColdWrites:
    """One write to each cold key, round-robin over the nodes; only final reads read them.

    Hot keys are rewritten every second or so, which hides a replica that forgot its data
    in a crash; a cold key is written once, before any fault, so it survives only if some
    majority still holds it after every crash of the run.
    """

    # a plain class, not a dataclass: the pipeline imports graders under a private name
    # that dataclasses cannot resolve while the module is still loading
    def __init__(self, targets: tuple[Target, ...], keys: tuple[str, ...]) -> None:
        self.targets = targets
        self.keys = keys

    @property
    def name(self) -> str:
        return "cold"

    def ops(self) -> Iterator[Op]:
        for i, key in enumerate(self.keys):
            yield Op("write", self.targets[i % len(self.targets)], key, f"{self.name}:{i}")

    def default_client(self) -> KVClient:
        return KVClient()


# -- deployment -------------------------------------------------------------------------


def contract_env(cluster: Cluster, host: Host) -> dict[str, str]:
    return {
        "NODE_ID": host.name,
        "NODE_ADDRESS": host.address,
        "PEERS": ",".join(f"{h.name}={h.address}" for h in cluster.hosts),
        "PORT": str(PORT),
        "DATA_DIR": DATA_DIR,
    }


# -- functional tests -------------------------------------------------------------------


Failed = ExpectationFailed


class Probe:
    """The grader's HTTP client for the functional tests (one request at a time)."""

    def __init__(self, session: aiohttp.ClientSession, urls: Mapping[str, str]) -> None:
        self.session = session
        self.urls = dict(urls)
        self.nodes = list(urls)

    async def put(self, node: str, key: str, value: str) -> None:
        try:
            async with self.session.put(
                f"{self.urls[node]}/kv/{key}", data=value.encode("utf-8")
            ) as resp:
                await read_capped(resp)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Failed(f"PUT /kv/{key} on {node}: {type(exc).__name__} {exc}") from None
        if not 200 <= status < 300:
            raise Failed(f"PUT /kv/{key} on {node} answered {status}, expected 2xx")

    async def get(self, node: str, key: str) -> tuple[int, bytes]:
        try:
            async with self.session.get(f"{self.urls[node]}/kv/{key}") as resp:
                return resp.status, await read_capped(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Failed(f"GET /kv/{key} on {node}: {type(exc).__name__} {exc}") from None

    async def expect(self, node: str, key: str, value: str | None) -> None:
        """``node`` serves ``value`` (None: 404) for ``key`` right now."""
        status, body = await self.get(node, key)
        if not _matches(status, body, value):
            raise Failed(f"GET /kv/{key} on {node}: {_show(status, body)}, expected {_want(value)}")

    async def eventually(self, key: str, value: str | None, nodes: list[str] | None = None) -> None:
        """Every node (of ``nodes``) serves ``value`` for ``key`` within ``VISIBLE_S``."""
        deadline = time.monotonic() + VISIBLE_S
        last: dict[str, str] = {}
        for node in nodes or self.nodes:
            while True:
                status, body = await self.get(node, key)
                if _matches(status, body, value):
                    break
                last[node] = _show(status, body)
                if time.monotonic() >= deadline:
                    raise Failed(
                        f"GET /kv/{key} on {node}: still {last[node]} {VISIBLE_S:g} s after "
                        f"the write, expected {_want(value)}"
                    )
                await asyncio.sleep(0.05)


def _matches(status: int, body: bytes, value: str | None) -> bool:
    if value is None:
        return status == 404
    return status == 200 and body == value.encode("utf-8")


def _show(status: int, body: bytes) -> str:
    text = body[:60].decode("utf-8", errors="replace")
    return f"HTTP {status} {text!r}" + ("..." if len(body) > 60 else "")


def _want(value: str | None) -> str:
    if value is None:
        return "HTTP 404"
    shown = value[:60] + ("..." if len(value) > 60 else "")
    return f"HTTP 200 {shown!r}"


TestFn = Callable[[Probe, str], Awaitable[None]]


async def t_put_get_same_node(p: Probe, tag: str) -> None:
    await p.put("n1", "fx-same", f"hello {tag}")
    await p.expect("n1", "fx-same", f"hello {tag}")


async def t_visible_on_every_node(p: Probe, tag: str) -> None:
    await p.put("n2", "fx-everywhere", f"replicated {tag}")
    await p.eventually("fx-everywhere", f"replicated {tag}")


async def t_missing_key_is_404(p: Probe, tag: str) -> None:
    for node in p.nodes:
        await p.expect(node, f"fx-never-written-{tag}", None)


async def t_overwrite_same_node(p: Probe, tag: str) -> None:
    await p.put("n3", "fx-over", f"first {tag}")
    await p.put("n3", "fx-over", f"second {tag}")
    await p.expect("n3", "fx-over", f"second {tag}")
    await p.eventually("fx-over", f"second {tag}")


async def t_overwrite_from_another_node(p: Probe, tag: str) -> None:
    await p.put("n1", "fx-cross", f"v1 {tag}")
    await p.eventually("fx-cross", f"v1 {tag}")
    await p.put("n2", "fx-cross", f"v2 {tag}")
    await p.eventually("fx-cross", f"v2 {tag}")


async def t_keys_are_independent(p: Probe, tag: str) -> None:
    await p.put("n3", "fx-one", f"one {tag}")
    await p.put("n1", "fx-two", f"two {tag}")
    await p.eventually("fx-one", f"one {tag}")
    await p.eventually("fx-two", f"two {tag}")


ODD_KEYS = ("a.b_c~d-E9", "UPPER.lower", "~tilde", "_", "-dash-", "k" * 100)


async def t_odd_keys(p: Probe, tag: str) -> None:
    for i, key in enumerate(ODD_KEYS):
        await p.put(p.nodes[i % len(p.nodes)], key, f"key {key} {tag}")
    for key in ODD_KEYS:
        await p.eventually(key, f"key {key} {tag}")


async def t_unicode_value(p: Probe, tag: str) -> None:
    value = f"héllo wörld ✓ 日本語 🚀 {tag}"
    await p.put("n2", "fx-unicode", value)
    await p.eventually("fx-unicode", value)


async def t_whitespace_and_symbols(p: Probe, tag: str) -> None:
    value = f'  padded  \n\tline two\r\n{{"json": [1, 2]}} & <b>%20</b> /kv/x?y=z#f {tag}\n'
    await p.put("n3", "fx-symbols", value)
    await p.eventually("fx-symbols", value)


async def t_empty_value(p: Probe, tag: str) -> None:
    await p.put("n1", "fx-empty", "")
    await p.eventually("fx-empty", "")


async def t_large_value(p: Probe, tag: str) -> None:
    value = (tag + "0123456789abcdef" * 4096)[: 64 * 1024]
    await p.put("n2", "fx-large", value)
    await p.eventually("fx-large", value)


FUNCTIONAL_TESTS: tuple[tuple[str, TestFn], ...] = (
    ("put-get-same-node", t_put_get_same_node),
    ("visible-on-every-node", t_visible_on_every_node),
    ("missing-key-404", t_missing_key_is_404),
    ("overwrite-same-node", t_overwrite_same_node),
    ("overwrite-from-another-node", t_overwrite_from_another_node),
    ("keys-are-independent", t_keys_are_independent),
    ("odd-legal-keys", t_odd_keys),
    ("unicode-value", t_unicode_value),
    ("whitespace-and-symbols-value", t_whitespace_and_symbols),
    ("empty-value", t_empty_value),
    ("64-KiB-value", t_large_value),
)


async def wait_ready(probe: Probe, tag: str) -> None:
    """Give every node up to ``READY_S`` to answer a read with 200 or 404 (e.g. to elect)."""
    deadline = time.monotonic() + READY_S
    for node in probe.nodes:
        while time.monotonic() < deadline:
            try:
                status, _ = await probe.get(node, f"fx-ready-{tag}")
                if status in (200, 404):
                    break
            except Failed:
                pass
            await asyncio.sleep(0.1)


async def run_functional(urls: Mapping[str, str], tag: str) -> dict[str, str | None]:
    """Each test's failure message, or None when it passed (all bounded in time)."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        probe = Probe(session, urls)
        await wait_ready(probe, tag)
        tests = [(name, _with_tag(fn, tag)) for name, fn in FUNCTIONAL_TESTS]
        return await run_tests(tests, probe, per_test_s=TEST_S, total_s=FUNCTIONAL_S)


def _with_tag(fn: TestFn, tag: str) -> Callable[[Probe], Awaitable[None]]:
    return lambda probe: fn(probe, tag)


ROBUSTNESS_CHECKS = (
    "linearizable",
    "lost-writes",
    "stale-reads",
    "availability",
    "serving",
    "no-spof",
)


# -- the grade --------------------------------------------------------------------------


async def grade(ctx: GradeContext) -> GradeOutcome:
    ctx.progress("building a 3-host cluster and starting the service on every host")
    cluster = ctx.cluster(HOSTS)
    deployed = await deploy(
        cluster,
        START_CMD,
        lambda h: contract_env(cluster, h),
        port=PORT,
        timeout=LISTEN_S,
        name="kv",
    )
    problems, urls = list(deployed.problems), deployed.urls
    notes: list[str] = []
    tests: dict[str, str | None] = {}
    problem = "; ".join(problems) if problems else None
    if problems:
        notes += problems
        functional = functional_result({}, problem)
    else:
        ctx.progress("functional tests")
        # a fresh token, never the seed: nothing the service receives may tell it the seed
        tag = secrets.token_hex(4)

        async def functional_phase() -> dict[str, str | None]:
            return await run_functional(urls, tag)

        tests = await asyncio.to_thread(cluster.run_client, functional_phase)
        functional = functional_result(tests, None)
        notes += [f"functional test {n} failed: {e}" for n, e in tests.items() if e]
    # recorded in the history too, so `infragym check` can re-score it (see recheck)
    ctx.history.meta["functional"] = {"tests": tests, "problem": problem}
    (ctx.artifacts_dir / "functional.json").write_text(
        json.dumps({"score": functional.score, "tests": tests}, indent=2, ensure_ascii=False)
    )
    if functional.verdict is not Verdict.PASS:
        results = {
            "functional": functional,
            **not_run("the functional contract failed", ROBUSTNESS_CHECKS),
        }
        return finish(results, functional.score, notes)

    results = await robustness(ctx, cluster, urls, notes)
    results["functional"] = functional
    return finish(results, functional.score, notes)


async def robustness(
    ctx: GradeContext, cluster: Cluster, urls: Mapping[str, str], notes: list[str]
) -> dict[str, CheckResult]:
    schedule = fault_schedule(ctx.seed, cluster.names)
    (ctx.artifacts_dir / "schedule.json").write_text(json.dumps(schedule.to_json(), indent=2))
    notes.append(
        "faults: "
        + "; ".join(
            f"{f.at:.1f}s {f.spec.kind}({','.join(f.spec.targets)}"
            + (f" {f.spec.param('topology')}" if f.spec.param("topology") else "")
            + f") {f.duration:.1f}s"
            for f in schedule.faults
        )
    )
    targets = parse_targets(urls)
    # the workload is drawn from fresh randomness, not the seed (which would let a service
    # recognise its run); it is recorded so a history can be re-checked and replayed
    workload_seed = secrets.randbits(63)
    ctx.history.meta["workload_seed"] = workload_seed
    (ctx.artifacts_dir / "workload.json").write_text(json.dumps({"seed": workload_seed}))
    hot = KVGenerator(
        urls, seed=workload_seed, mix=Mix(read=0.5, write=0.5), keys=HOT_KEYS, choice="random"
    )
    cold = ColdWrites(targets, tuple(f"c{i}" for i in range(COLD_KEYS)))
    duration = schedule.end + TAIL_S
    streams = (
        Stream(hot, rate=RATE, duration=duration, timeout=OP_TIMEOUT_S),
        Stream(cold, rate=10.0, max_ops=COLD_KEYS, timeout=OP_TIMEOUT_S),
    )

    async def load() -> None:
        async with Runner(ctx.history, ctx.clock) as runner:
            await runner.run(*streams)

    ctx.progress(f"{RATE:.0f} ops/s for {duration:.0f} s under {len(schedule.faults)} faults")
    async with Nemesis(cluster, ctx.history, ctx.clock) as nemesis:
        outcomes = await asyncio.gather(
            asyncio.to_thread(cluster.run_client, load),
            nemesis.run(schedule),
            return_exceptions=True,
        )
    for o in outcomes:
        if isinstance(o, BaseException):
            raise o
    down = await wait_all_listening(cluster, PORT, LISTEN_S)
    if down:
        notes += [f"after the final heal: {d}" for d in down]
    await asyncio.sleep(SETTLE_S)

    async def final_reads() -> None:
        async with Runner(ctx.history, ctx.clock) as runner:
            await runner.run(final_read_stream(ctx.history, targets, timeout=2.0))

    ctx.progress("final reads of every key on every node")
    await asyncio.to_thread(cluster.run_client, final_reads)
    ops = ctx.history.operations()
    counts = {t.value: sum(op.outcome is t for op in ops) for t in OpType}
    counts.pop(OpType.INVOKE.value)
    notes.append(
        f"workload: {len(ops)} operations, " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    ctx.progress("checking the history")
    budget = max(2.0, min(CHECK_BUDGET_S, ctx.remaining() - 10.0))
    return await asyncio.to_thread(check_all, checkers(budget), ctx.history)


def finish(results: dict[str, CheckResult], functional: float, notes: list[str]) -> GradeOutcome:
    reward: RewardResult = rubric().score(results)
    for c in reward.breakdown:
        notes.append(f"{c.name}: {c.verdict.value}, score {c.score:.3f}: {c.explanation[:300]}")
    return GradeOutcome(reward=reward, functional=functional, notes=notes)
