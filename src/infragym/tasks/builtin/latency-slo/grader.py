"""Hidden grader of latency-slo: a three-tier shop must meet its p99 objective at its rate.

The variant's hosts (roles ``web``, ``app``, ``db``, each on its CPU quota) run
``/bin/sh /srv/app/start.sh`` with the contract's environment; the database host first
(it must listen on ``DB_PORT`` within 90 s: initdb and the seed data), then the
application, then nginx. Functional tests through nginx gate the reward. Then open-loop
load (latency from each operation's intended start, so no coordinated omission) at the
variant's rate, and a step load at multiples of it to find the highest rate that still
meets the objective. Throughout, correctness probes from clients of their own: an order
placed by one client must be in the next read of another, and a user's orders read
through the service must equal the database's rows (read with ``psql`` on the database
host). Load writes go to the lower half of the users and probes to the upper half, so a
probe's comparison with the database is never raced by the load.

Measured: p50/p99/p99.9 and the error rate at the target, the highest rate meeting the
objective, CPU seconds per request from the hosts' cgroups. ``recheck(history)`` scores a
stored history the same way.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infragym.checkers import CheckResult, Verdict, check_all
from infragym.grading import (
    ExpectationFailed,
    GradeContext,
    GradeOutcome,
    HttpProbe,
    ProbeTest,
    env_from_spec,
    finish,
    measured,
    not_run,
    record_functional,
    run_tests,
    wait_listening,
)
from infragym.grading import recheck as recheck_history
from infragym.history import History, OpType
from infragym.rubric import Criterion, RewardResult, Rubric, gate, linear
from infragym.sandbox import Cluster, Host
from infragym.tasks import Variant, load_task
from infragym.workload import HttpCall, Op, Result, Runner, Stream, Target, status_result

TASK = load_task(Path(__file__).parent)
START_CMD = ("/bin/sh", "/srv/app/start.sh")
DB_LISTEN_S, LISTEN_S = 90.0, 15.0
WARMUP_S = 3.0  # load at the variant's rate, not judged: pools fill, caches warm
TARGET_S = 20.0  # load at the variant's rate, judged
STEPS = (1.5, 2.0, 3.0)  # then these multiples of it, STEP_S each
STEP_S = 8.0
WRITE_SHARE = 0.1
OP_TIMEOUT_S = 2.0
MAX_ERRORS = 0.01  # share of failed or unknown operations the objective allows
PROBE_EVERY_S = 0.5
MIN_PROBES = 20
HEADROOM_FULL = 2.0  # highest rate at the objective / the variant's rate: full score here
CORRECTNESS_CAP = 0.1
PSQL = "/usr/lib/postgresql/15/bin/psql"
SHOP = "shop"


@dataclass(frozen=True)
class Shop:
    """The variant's figures and hosts."""

    web: str
    app: str
    db: str
    port: int
    rate: float
    p99_s: float
    users: int

    @classmethod
    def of(cls, v: Variant) -> Shop:
        return cls(
            v.hosts_of("web")[0],
            v.hosts_of("app")[0],
            v.hosts_of("db")[0],
            int(v["port"]),
            float(v["rate"]),
            float(v["p99_ms"]) / 1000,
            int(v["users"]),
        )

    def load_users(self) -> range:
        """Users the load writes to (probes use the others)."""
        return range(1, self.users // 2 + 1)

    def probe_users(self) -> range:
        return range(self.users // 2 + 1, self.users + 1)


# -- the load ------------------------------------------------------------------------------


class ShopClient:
    """``read``: GET a user's orders (ok with the number of orders); ``write``: POST an
    order (ok with its id). The phase is the operation's ``f`` suffix (``read@target``)."""

    __slots__ = ()

    def encode(self, op: Op) -> HttpCall:
        path = f"/users/{op.key}/orders"
        if op.f.startswith("write"):
            return HttpCall("POST", path, json.dumps(op.value).encode(), "application/json")
        return HttpCall("GET", path)

    def decode(self, op: Op, status: int, body: bytes) -> Result:
        if status in (200, 201):
            try:
                doc = json.loads(body)
                value = doc["id"] if op.f.startswith("write") else len(doc["orders"])
            except (ValueError, KeyError, TypeError):
                return Result(OpType.FAIL, None, f"HTTP {status} with a malformed body")
            return Result(OpType.OK, value)
        return status_result(status, status)


@dataclass(frozen=True)
class ShopLoad:
    """Reads of any user's orders and, ``WRITE_SHARE`` of the time, an order for a user of
    the load's half; ``phase`` tags the operations."""

    target: Target
    shop: Shop
    phase: str
    seed: int

    @property
    def name(self) -> str:
        return self.phase

    def ops(self) -> Iterator[Op]:
        rnd = random.Random(self.seed)
        writers = self.shop.load_users()
        while True:
            if rnd.random() < WRITE_SHARE:
                value = {"item": rnd.randint(1, 500), "qty": rnd.randint(1, 5)}
                yield Op(f"write@{self.phase}", self.target, str(rnd.choice(writers)), value)
            else:
                yield Op(f"read@{self.phase}", self.target, str(rnd.randint(1, self.shop.users)))

    def default_client(self) -> ShopClient:
        return ShopClient()


def phases(shop: Shop) -> list[tuple[str, float, float, float]]:
    """(phase, rate, start, duration) of the load: a warm-up, the target, then each step."""
    out = [("warmup", shop.rate, 0.0, WARMUP_S), ("target", shop.rate, WARMUP_S, TARGET_S)]
    t = WARMUP_S + TARGET_S
    for m in STEPS:
        out.append((f"x{m:g}", shop.rate * m, t, STEP_S))
        t += STEP_S
    return out


def streams(target: Target, shop: Shop, seed: int) -> list[Stream]:
    return [
        Stream(
            ShopLoad(target, shop, phase, seed + i),
            rate=rate,
            duration=duration,
            start=start,
            timeout=OP_TIMEOUT_S,
        )
        for i, (phase, rate, start, duration) in enumerate(phases(shop))
    ]


# -- the database's truth -------------------------------------------------------------------


def db_orders(host: Host, env: Mapping[str, str], user: int) -> list[list[Any]] | None:
    """The user's orders as the database holds them: [id, item name, qty] by id."""
    sql = (
        "SELECT coalesce(json_agg(json_build_array(o.id, i.name, o.qty) ORDER BY o.id), '[]')"
        f" FROM orders o JOIN items i ON i.id = o.item_id WHERE o.user_id = {int(user)}"
    )
    argv = [PSQL, "-h", "127.0.0.1", "-p", env["DB_PORT"], "-U", env["DB_USER"],
            "-d", env["DB_NAME"], "-At", "-c", sql]  # fmt: skip
    try:
        done = host.run(argv, timeout=10.0, env={"PGPASSWORD": env["DB_PASSWORD"]})
    except Exception:
        return None
    if done.returncode != 0:
        return None
    try:
        rows = json.loads(done.stdout)
    except ValueError:
        return None
    return rows if isinstance(rows, list) else None


def served_orders(body: bytes, user: int) -> list[list[Any]] | None:
    try:
        doc = json.loads(body)
        if doc["user"] != user:
            return None
        return [[o["id"], o["item"], o["qty"]] for o in doc["orders"]]
    except (ValueError, KeyError, TypeError):
        return None


class Unanswered(ExpectationFailed):
    """The service did not answer (no response, or a 5xx): the load's error rate counts
    that, so a probe that met it judges nothing."""


async def request(
    p: HttpProbe, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    try:
        status, answer = await p.request(method, SHOP, path, body)
    except ExpectationFailed as exc:
        raise Unanswered(str(exc)) from None
    if status >= 500:
        raise Unanswered(f"{method} {path} answered HTTP {status}")
    return status, answer


async def matches_db(
    p: HttpProbe, cluster: Cluster, shop: Shop, env: Mapping[str, str], user: int
) -> str | None:
    """Why the service's answer for ``user`` differs from the database (None: it does not)."""
    status, body = await request(p, "GET", f"/users/{user}/orders")
    truth = await asyncio.to_thread(db_orders, cluster.host(shop.db), env, user)
    if truth is None:
        raise Unanswered(f"the database could not be read for user {user}")
    served = served_orders(body, user) if status == 200 else None
    if served != truth:
        got = f"HTTP {status}" if served is None else f"{len(served)} orders"
        return f"GET /users/{user}/orders: {got}, the database holds {len(truth)} orders"
    return None


async def place_then_read(
    writer: HttpProbe, reader: HttpProbe, user: int, item: int, qty: int
) -> str | None:
    """Why an order ``writer`` placed was not in ``reader``'s next read (None: it was)."""
    path = f"/users/{user}/orders"
    body = json.dumps({"item": item, "qty": qty}).encode()
    status, answer = await request(writer, "POST", path, body)
    if status != 201:
        return f"POST {path} answered HTTP {status}, expected 201"
    try:
        order = json.loads(answer)["id"]
    except (ValueError, KeyError, TypeError):
        return f'POST {path} answered {answer[:80]!r}, expected {{"id": ...}}'
    status, got = await request(reader, "GET", path)
    served = served_orders(got, user) if status == 200 else None
    if served is None or not any(o[0] == order and o[2] == qty for o in served):
        return f"order {order} placed for user {user} was not in another client's next read"
    return None


# -- functional tests ---------------------------------------------------------------------


def functional_tests(
    cluster: Cluster, shop: Shop, env: Mapping[str, str], url: str
) -> list[tuple[str, ProbeTest]]:
    users = shop.probe_users()

    async def health(p: HttpProbe) -> None:
        await p.expect_answer(SHOP, "/health", 200)

    async def reads(p: HttpProbe) -> None:
        for user in (users[0], users[len(users) // 2], users[-1]):
            why = await matches_db(p, cluster, shop, env, user)
            if why:
                raise ExpectationFailed(why)

    async def writes(p: HttpProbe) -> None:
        async with HttpProbe.open({SHOP: url}, request_s=5.0) as other:
            why = await place_then_read(p, other, users[1], 7, 3)
            if why:
                raise ExpectationFailed(why)
            why = await matches_db(other, cluster, shop, env, users[1])
            if why:
                raise ExpectationFailed(why)

    async def unknown(p: HttpProbe) -> None:
        await p.expect_answer(SHOP, f"/users/{shop.users + 12345}/orders", 404)

    async def bad(p: HttpProbe) -> None:
        await p.expect_answer(
            SHOP, f"/users/{users[2]}/orders", 400, method="POST", body=b'{"item": "x"}'
        )

    return [
        ("health", health),
        ("reads-match-the-database", reads),
        ("an-order-is-read-back", writes),
        ("unknown-user-is-404", unknown),
        ("bad-order-is-400", bad),
    ]


# -- checks -------------------------------------------------------------------------------


def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``xs``; inf when empty."""
    if not xs:
        return math.inf
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def phase_stats(history: History, phase: str) -> dict[str, float]:
    """Latency from intended start (unknown outcomes as infinite) and the error rate of
    the phase's operations."""
    ops = [op for op in history.operations() if op.f.endswith(f"@{phase}")]
    lat = [op.latency if op.outcome is OpType.OK else math.inf for op in ops]
    errors = sum(op.outcome is not OpType.OK for op in ops)
    return {
        "ops": len(ops),
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "p999": percentile(lat, 99.9),
        "errors": errors / len(ops) if ops else 1.0,
    }


def meets(stats: Mapping[str, float], p99_s: float) -> bool:
    return stats["ops"] > 0 and stats["p99"] <= p99_s and stats["errors"] <= MAX_ERRORS


def _ms(s: float) -> str:
    return "inf" if math.isinf(s) else f"{s * 1000:.0f} ms"


@dataclass(frozen=True)
class Objective:
    """At the variant's rate: p99 from intended start within the target and at most
    ``MAX_ERRORS`` failed or unknown; ``errors`` judges the error rate alone."""

    p99_s: float
    errors_only: bool = False
    name: str = "slo"

    def check(self, history: History) -> CheckResult:
        st = phase_stats(history, "target")
        n = int(st["ops"])
        if n < 50:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, f"{n} operations", judged=n)
        ok = st["errors"] <= MAX_ERRORS if self.errors_only else meets(st, self.p99_s)
        what = (
            f"at the target rate: p50 {_ms(st['p50'])}, p99 {_ms(st['p99'])}, "
            f"p99.9 {_ms(st['p999'])}, errors {st['errors']:.1%} of {n} "
            f"(objective: p99 <= {_ms(self.p99_s)}, errors <= {MAX_ERRORS:.0%})"
        )
        return CheckResult(
            self.name, Verdict.PASS if ok else Verdict.FAIL, 1.0 if ok else 0.0, what,
            {k: v for k, v in st.items() if math.isfinite(v)}, judged=n,
        )  # fmt: skip


@dataclass(frozen=True)
class Headroom:
    """The highest load phase meeting the objective, as a multiple of the target rate
    (0 when not even the target meets it)."""

    p99_s: float
    name: str = "headroom"

    def check(self, history: History) -> CheckResult:
        best, seen = 0.0, []
        for phase, m in [("target", 1.0), *((f"x{m:g}", m) for m in STEPS)]:
            st = phase_stats(history, phase)
            seen.append(f"{m:g}x p99 {_ms(st['p99'])} err {st['errors']:.1%}")
            if meets(st, self.p99_s):
                best = max(best, m)
        return CheckResult(
            self.name, Verdict.PASS if best >= 1 else Verdict.FAIL, best / max(STEPS),
            f"highest rate meeting the objective: {best:g}x the target ({'; '.join(seen)})",
            {"multiple": best}, judged=1,
        )  # fmt: skip


@dataclass(frozen=True)
class Correct:
    """Every answered correctness probe of ``history.meta["probes"]`` was right; fewer
    than ``MIN_PROBES`` answered gives unknown."""

    name: str = "correctness"

    def check(self, history: History) -> CheckResult:
        probes = [p for p in history.meta.get("probes") or [] if p[1] != "unanswered"]
        failed = [p for p in probes if p[1] == "wrong"]
        n = len(probes)
        if n < MIN_PROBES:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, f"{n} probes answered", judged=n)
        if failed:
            return CheckResult(
                self.name, Verdict.FAIL, 0.0,
                f"{len(failed)} of {n} answered probes wrong (first: {failed[0][2]})",
                {"probes": n, "wrong": len(failed)}, judged=n,
            )  # fmt: skip
        return CheckResult(
            self.name,
            Verdict.PASS,
            1.0,
            f"all {n} answered probes right",
            {"probes": n},
            judged=n,
        )


def checkers(shop: Shop) -> list[Any]:
    return [Objective(shop.p99_s), Objective(shop.p99_s, True, "errors"),
            Headroom(shop.p99_s), Correct()]  # fmt: skip


def rubric() -> Rubric:
    """- functional (gate, cap 0): every endpoint answers right through nginx.
    - correctness (gate, cap 0.1): every probe during the load saw its own writes and the
      database's rows (a cache without invalidation, or work skipped, fails).
    - errors (gate, cap 0): at most 1 % of the target phase's operations fail or time out.
    - slo (gate, cap 0; weight 3): the target phase's p99 within the objective.
    - headroom (weight 1): the highest rate meeting the objective, 0 at 1x, full at 2x.
    """
    return Rubric(
        [
            gate("functional"),
            gate("correctness", cap=CORRECTNESS_CAP),
            gate("errors", min_judged=50),
            Criterion("slo", weight=3.0, gate=True, cap=0.0, min_judged=50),
            Criterion("headroom", weight=1.0, score_fn=linear(1.0, HEADROOM_FULL, "multiple")),
        ]
    )


GATED = ("correctness", "errors", "slo", "headroom")


# -- the grading --------------------------------------------------------------------------


async def deploy(cluster: Cluster, shop: Shop, envs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Start the tiers back to front, each once the one behind it listens."""
    for name, port, wait in (
        (shop.db, int(envs[shop.db]["DB_PORT"]), DB_LISTEN_S),
        (shop.app, int(envs[shop.app]["APP_PORT"]), LISTEN_S),
        (shop.web, shop.port, LISTEN_S),
    ):
        h = cluster.host(name)
        proc = h.spawn("shop", list(START_CMD), env=dict(envs[name]), service=True)
        why = await asyncio.to_thread(wait_listening, h, proc, port, wait)
        if why:
            return [why]
    return []


async def probe_loop(
    cluster: Cluster, shop: Shop, env: Mapping[str, str], url: str, until: float, ctx: GradeContext
) -> list[tuple[float, str, str | None]]:
    """Alternately place-then-read from two clients and compare a read with the database:
    each probe's time, verdict (right, wrong, unanswered) and why."""
    out: list[tuple[float, str, str | None]] = []
    rnd = random.Random(secrets.randbits(32))
    users = shop.probe_users()
    async with (
        HttpProbe.open({SHOP: url}, request_s=OP_TIMEOUT_S * 2) as a,
        HttpProbe.open({SHOP: url}, request_s=OP_TIMEOUT_S * 2) as b,
    ):
        i = 0
        while ctx.clock.now() < until:
            user = rnd.choice(users)
            try:
                if i % 2 == 0:
                    why = await place_then_read(a, b, user, rnd.randint(1, 500), rnd.randint(1, 5))
                else:
                    why = await matches_db(b, cluster, shop, env, user)
                out.append((round(ctx.clock.now(), 3), "wrong" if why else "right", why))
            except Unanswered as exc:
                out.append((round(ctx.clock.now(), 3), "unanswered", str(exc)))
            i += 1
            await asyncio.sleep(PROBE_EVERY_S)
    return out


async def under_load(
    ctx: GradeContext, cluster: Cluster, shop: Shop, envs: Mapping[str, Mapping[str, str]]
) -> dict[str, CheckResult]:
    url = f"http://{cluster.host(shop.web).address}:{shop.port}"
    seed = secrets.randbits(31)
    ctx.history.meta["workload_seed"] = seed
    load = streams(Target(SHOP, url), shop, seed)
    end = WARMUP_S + TARGET_S + STEP_S * len(STEPS)

    async def run() -> list[tuple[float, str, str | None]]:
        async with Runner(ctx.history, ctx.clock, transport="lean") as runner:
            probes = asyncio.create_task(
                probe_loop(cluster, shop, envs[shop.db], url, ctx.clock.now() + end, ctx)
            )
            await runner.run(*load)
            return await probes

    ctx.progress(f"load at {shop.rate:g}/s for {TARGET_S:g} s, then steps {STEPS}")
    cpu0 = ctx.cpu_usage_s()
    with measured(cluster):
        probes = await asyncio.to_thread(cluster.run_client, run)
    cpu = sum(ctx.cpu_usage_s().values()) - sum(cpu0.values())
    ctx.history.meta["probes"] = probes
    ops = ctx.history.operations()
    ctx.history.meta["cpu_s_per_request"] = cpu / max(1, len(ops))
    return await asyncio.to_thread(check_all, checkers(shop), ctx.history)


async def grade(ctx: GradeContext) -> GradeOutcome:
    shop = Shop.of(ctx.variant)
    ctx.progress("building the web, application and database hosts")
    cluster = ctx.cluster()
    spec_env = env_from_spec(TASK.spec, ctx.variant)
    envs = {h.name: spec_env(cluster, h) for h in cluster.hosts}
    ctx.history.meta["shop"] = {"rate": shop.rate, "p99_s": shop.p99_s}
    problems = await deploy(cluster, shop, envs)
    notes = list(problems)
    tests: dict[str, str | None] = {}
    url = f"http://{cluster.host(shop.web).address}:{shop.port}"
    if not problems:
        ctx.progress("functional tests through nginx")

        async def functional() -> dict[str, str | None]:
            async with HttpProbe.open({SHOP: url}, request_s=5.0) as probe:
                late = await probe.ready("/health", 10.0)
                if late:
                    return {"answers": f"nothing answered at {url} within 10 s"}
                return await run_tests(
                    functional_tests(cluster, shop, envs[shop.db], url), probe,
                    per_test_s=20.0, total_s=40.0,
                )  # fmt: skip

        tests = await asyncio.to_thread(cluster.run_client, functional)
        notes += [f"functional test {n} failed: {e}" for n, e in tests.items() if e]
    result = record_functional(ctx.history, tests, "; ".join(problems) if problems else None)
    if result.verdict is not Verdict.PASS:
        results = {"functional": result, **not_run("the functional contract failed", GATED)}
        return finish(rubric(), results, result.score, notes)
    results = await under_load(ctx, cluster, shop, envs)
    results["functional"] = result
    notes.append(f"CPU seconds per request: {ctx.history.meta['cpu_s_per_request']:.4f}")
    return finish(rubric(), results, result.score, notes)


def recheck(history: History, budget_s: float = 20.0) -> RewardResult:
    """The reward of a stored history, offline, against the objective it recorded."""
    del budget_s
    shop = Shop.of(TASK.spec.variant())
    meta = history.meta.get("shop")
    if isinstance(meta, dict):
        p99 = float(meta["p99_s"])
        return recheck_history(history, lambda: checkers_for(p99), rubric())
    return recheck_history(history, lambda: checkers(shop), rubric())


def checkers_for(p99_s: float) -> list[Any]:
    return [Objective(p99_s), Objective(p99_s, True, "errors"), Headroom(p99_s), Correct()]
