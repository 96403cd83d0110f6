"""Hidden grader of counter-durable, a :class:`~infragym.grading.ServiceGrader` on one host:
deploy ``/bin/sh /srv/app/start.sh``; functional tests of ``POST /incr`` and ``GET /value``;
then open-loop increments and reads while the host is crashed twice and paused once (one
fault at a time, quiet gaps between), the increments stopping a second before the reads
so the last reads give the final count. The checks are the counter's own
(:class:`CounterCheck`: nothing acknowledged lost, never backwards, nothing invented;
:class:`Recovery`: seconds from each heal to the first answer) plus steady-state
availability. The seed only chooses the fault schedule.

With one host, availability inside a fault window is 0 by definition (the faulted host is
the service), so no fault window is judged for availability; what is judged is what a
one-host service can promise: durability, recovery after each heal, steady serving.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infragym.checkers import Availability, Checker, CheckResult, Recovery, Verdict
from infragym.grading import (
    Contract,
    ExpectationFailed,
    Functional,
    GradeContext,
    GradeOutcome,
    HttpProbe,
    Phases,
    ServiceGrader,
    env_from_spec,
)
from infragym.history import History, Operation, OpType
from infragym.nemesis import Schedule, balanced_schedule
from infragym.rubric import Criterion, RewardResult, Rubric, all_or_nothing, gate, linear
from infragym.tasks import load_task
from infragym.workload import HttpCall, Op, Result, Stream, Target, parse_targets, status_outcome

TASK = load_task(Path(__file__).parent)
HOSTS = TASK.spec.topology.hosts
PORT = int(TASK.spec.contract_env["PORT"])
START_CMD = ("/bin/sh", "/srv/app/start.sh")  # `infragym validate` checks every workspace has it
INCR_RATE = 30.0
READ_RATE = 20.0
OP_TIMEOUT_S = 1.0
READS_ONLY_S = 1.0  # the increments stop this long before the reads: the final count
LISTEN_S = 5.0  # a start command must listen within it (instructions.md)
RECOVERY_S = 3.0  # each heal to the first answer, at most
SERVING_SLO = 0.9
NAIVE_CAP = 0.25
CHECK_BUDGET_S = 5.0


# --- the counter's HTTP API as a workload ---------------------------------------------


class CounterClient:
    """``incr``: POST /incr; ``read``: GET /value; a 200 carries the value as an integer."""

    def encode(self, op: Op) -> HttpCall:
        if op.f == "incr":
            return HttpCall("POST", "/incr", b"")
        return HttpCall("GET", "/value")

    def decode(self, op: Op, status: int, body: bytes) -> Result:
        kind = status_outcome(status)
        if kind is not OpType.OK:
            return Result(kind, None, f"HTTP {status}")
        text = body.decode("ascii", errors="replace")
        number = text[:-1] if text.endswith("\n") else text
        if not number.isdigit() or len(number) > 30:
            # a 200 that does not say the value: done perhaps (an incr), but not usable
            return Result(
                OpType.INFO, None, f"HTTP 200 with a body that is no count: {text[:40]!r}"
            )
        return Result(OpType.OK, int(number))


@dataclass(frozen=True)
class CounterOps:
    """``f`` (``incr`` or ``read``) over and over, spread over the targets round-robin."""

    targets: tuple[Target, ...]
    f: str
    name: str

    def ops(self) -> Iterator[Op]:
        i = 0
        while True:
            yield Op(self.f, self.targets[i % len(self.targets)])
            i += 1

    def default_client(self) -> CounterClient:
        return CounterClient()


def workload(urls: Mapping[str, str], seed: int, duration: float) -> list[Stream]:
    """Increments for all but the last second, reads throughout (the seed is unused: the
    operations are the same every run, only their outcomes differ)."""
    targets = parse_targets(urls)
    return [
        Stream(
            CounterOps(targets, "incr", "incr"),
            rate=INCR_RATE,
            duration=duration - READS_ONLY_S,
            timeout=OP_TIMEOUT_S,
        ),
        Stream(
            CounterOps(targets, "read", "read"),
            rate=READ_RATE,
            duration=duration,
            timeout=OP_TIMEOUT_S,
        ),
    ]


# --- checks ---------------------------------------------------------------------------


def _counts(history: History) -> list[Operation]:
    """The counter's operations, each with the value its answer carried as ``result``
    (``History.operations`` keeps a completion's value only for reads)."""
    answered = {e.id: e.value for e in history.ops if e.type is not OpType.INVOKE}
    return [
        dataclasses.replace(op, result=answered.get(op.id))
        for op in history.operations()
        if op.f in ("incr", "read")
    ]


@dataclass(frozen=True)
class CounterCheck:
    """A counter's promise, from the values its answers carried.

    - never backwards: an ok read returns at least, and an ok incr more than, every value
      answered by an operation that completed before it began (a lost increment shows
      as the counter answering a lower value after a crash);
    - no repeats: two acknowledged increments never got the same new value;
    - nothing invented: the final count (the last reads, after every increment ended)
      exceeds the count before the load by at most the increments acknowledged plus
      those of unknown outcome.

    ``worst_error`` is the largest relative error seen (how far below what it had already
    answered the counter went, or how many increments it invented over those sent); the
    verdict passes when it is at most ``max_error`` (0: exact).
    """

    name: str = "durable"
    max_error: float = 0.0

    def check(self, history: History) -> CheckResult:
        ops = _counts(history)
        done = [op for op in ops if op.ok and isinstance(op.result, int)]
        incrs = [op for op in done if op.f == "incr"]
        unknown = sum(op.f == "incr" and op.outcome is OpType.INFO for op in ops)
        if not incrs:
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                "no increment was acknowledged; nothing to judge",
                judged=0,
            )
        backwards, worst, example = self._backwards(done)
        repeats = sum(n - 1 for n in Counter(op.result for op in incrs).values() if n > 1)
        last_incr = max(op.complete for op in ops if op.f == "incr" and math.isfinite(op.complete))
        final = [op.result for op in done if op.f == "read" and op.invoke > last_incr]
        metrics: dict[str, float | int | str | None] = {
            "acknowledged": len(incrs),
            "unknown": unknown,
            "backwards": backwards,
            "repeats": repeats,
        }
        problems = []
        if backwards:
            problems.append(f"{backwards} answers went backwards (e.g. {example})")
        if repeats:
            problems.append(f"{repeats} acknowledged increments repeated another's value")
        if final:
            base = min(
                [op.result for op in done if op.f == "read"] + [min(i.result for i in incrs) - 1]
            )
            counted = max(final) - base
            invented = counted - (len(incrs) + unknown)
            metrics.update(final=max(final), counted=counted, invented=max(0, invented))
            if invented > 0:
                worst = max(worst, invented / (len(incrs) + unknown))
                problems.append(
                    f"the count rose by {counted} but only {len(incrs)} increments were "
                    f"acknowledged and {unknown} unknown: {invented} were invented"
                )
        elif not problems:
            return CheckResult(
                self.name,
                Verdict.UNKNOWN,
                0.0,
                "no read answered after the last increment: the final count is unknown",
                metrics,
                judged=len(incrs),
            )
        metrics["worst_error"] = worst
        score = max(0.0, 1.0 - worst)
        verdict = (
            Verdict.PASS
            if worst <= self.max_error and (self.max_error or not problems)
            else Verdict.FAIL
        )
        what = "; ".join(problems) or f"{len(incrs)} acknowledged increments all counted, once"
        return CheckResult(
            self.name,
            verdict,
            score,
            f"{what} (worst relative error {worst:.3f}, allowed {self.max_error:g})",
            metrics,
            judged=len(incrs),
        )

    @staticmethod
    def _backwards(done: list[Operation]) -> tuple[int, float, str]:
        """Answers below what had been answered before they began: how many, the worst
        relative drop, and an example."""
        by_end = sorted(done, key=lambda op: op.complete)
        ends = [op.complete for op in by_end]
        best = list(_running_max(op.result for op in by_end))
        n, worst, example = 0, 0.0, ""
        for op in done:
            i = bisect.bisect_left(ends, op.invoke)
            if i == 0:
                continue
            seen = best[i - 1]
            if op.result < seen or (op.f == "incr" and op.result == seen):
                n += 1
                drop = (seen - op.result) / seen if seen else 0.0
                if drop >= worst:
                    worst, example = drop, f"{op.f} answered {op.result} after {seen} was answered"
        return n, worst, example


def _running_max(values: Iterator[int]) -> Iterator[int]:
    m = -1
    for v in values:
        m = max(m, v)
        yield m


def checkers(budget_s: float = CHECK_BUDGET_S) -> list[Checker]:
    return [
        CounterCheck("durable", max_error=0.0),
        CounterCheck("keeps-count", max_error=0.5),
        Recovery(within_s=RECOVERY_S, ops=("incr", "read")),
        Availability(slo=SERVING_SLO, scope="steady", name="serving"),
    ]


def rubric() -> Rubric:
    """- functional, serving (steady state >= 90 % ok): gates, cap 0.
    - keeps-count (gate, cap 0): a counter that forgot (or invented) half its count or more
      has no durability at all.
    - durable (gate cap 0.25, weight 4): one lost acknowledged increment is not durable.
    - recovery (gate cap 0.25, weight 2): answering within 3 s of every heal; full at 0.5 s.
    - availability (weight 2): steady state, 0 at 90 %, full at 99 %.
    """
    return Rubric(
        [
            gate("functional"),
            gate("serving", min_judged=50),
            gate("keeps-count", min_judged=20),
            Criterion(
                "durable",
                weight=4.0,
                gate=True,
                cap=NAIVE_CAP,
                score_fn=all_or_nothing,
                min_judged=20,
            ),
            Criterion(
                "recovery",
                weight=2.0,
                gate=True,
                cap=NAIVE_CAP,
                score_fn=linear(RECOVERY_S, 0.5, "recovery_max_s"),
                min_judged=2,
            ),
            Criterion(
                "availability",
                check="serving",
                weight=2.0,
                score_fn=linear(SERVING_SLO, 0.99, "worst_availability"),
                min_judged=50,
            ),
        ]
    )


# --- functional tests -----------------------------------------------------------------


async def _number(p: HttpProbe, method: str, path: str) -> int:
    status, body = await p.request(method, "n1", path)
    text = body.decode("ascii", errors="replace")
    number = text[:-1] if text.endswith("\n") else text
    if status != 200 or not number.isdigit():
        raise ExpectationFailed(
            f"{method} {path} on n1: HTTP {status} {text[:40]!r}, expected HTTP 200 and a "
            "decimal count"
        )
    return int(number)


async def t_starts_at_zero(p: HttpProbe) -> None:
    if (v := await _number(p, "GET", "/value")) != 0:
        raise ExpectationFailed(f"GET /value on a fresh host answered {v}, expected 0")


async def t_incr_adds_one(p: HttpProbe) -> None:
    before = await _number(p, "GET", "/value")
    for i in range(1, 6):
        if (v := await _number(p, "POST", "/incr")) != before + i:
            raise ExpectationFailed(f"POST /incr #{i} answered {v}, expected {before + i}")
    if (v := await _number(p, "GET", "/value")) != before + 5:
        raise ExpectationFailed(
            f"GET /value after 5 increments answered {v}, expected {before + 5}"
        )


async def t_concurrent_incrs(p: HttpProbe) -> None:
    before = await _number(p, "GET", "/value")
    got = await asyncio.gather(*(_number(p, "POST", "/incr") for _ in range(20)))
    if sorted(got) != list(range(before + 1, before + 21)):
        raise ExpectationFailed(
            f"20 concurrent POST /incr after {before} answered {sorted(got)}, expected each of "
            f"{before + 1}..{before + 20} once"
        )
    if (v := await _number(p, "GET", "/value")) != before + 20:
        raise ExpectationFailed(f"GET /value after them answered {v}, expected {before + 20}")


SERVICE = ServiceGrader(
    contract=Contract(START_CMD, PORT, env_from_spec(TASK.spec), name="counter", listen_s=LISTEN_S),
    functional=Functional(
        [
            ("starts-at-zero", t_starts_at_zero),
            ("incr-adds-one", t_incr_adds_one),
            ("concurrent-incrs", t_concurrent_incrs),
        ],
        ready_path="/value",
        ready_s=LISTEN_S,
    ),
    workload=workload,
    checkers=checkers,
    rubric=rubric(),
    phases=Phases(tail_s=2.5, settle_s=0.5, listen_s=LISTEN_S, check_budget_s=CHECK_BUDGET_S),
)


def fault_schedule(seed: int, hosts: Sequence[str]) -> Schedule:
    """Two crashes and a pause of the one host in a seeded order, each 1-1.5 s, with
    1.5-2 s of quiet after each (recovery is measured there)."""
    return balanced_schedule(
        seed,
        hosts,
        kinds=("crash", "crash", "pause"),
        rounds=1,
        distinct=(),
        first_at=1.5,
        duration=(1.0, 1.5),
        gap=(1.5, 2.0),
        salt=TASK.name,
    )


async def grade(ctx: GradeContext) -> GradeOutcome:
    cluster = ctx.cluster(HOSTS)
    return await SERVICE.grade(ctx, cluster, fault_schedule(ctx.seed, cluster.names))


def recheck(history: History, budget_s: float = CHECK_BUDGET_S) -> RewardResult:
    return SERVICE.recheck(history, budget_s)
