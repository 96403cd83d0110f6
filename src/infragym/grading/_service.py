"""A service task's grader as data, in the manner of a Jepsen test map: the deployment
contract, the functional tests, the workload, the checkers and the rubric, and the phase
timings; :meth:`ServiceGrader.grade` runs the skeleton every such task shares::

    deploy -> functional tests -> gate -> load under the nemesis schedule -> heal
           -> wait until every host listens -> settle -> final reads -> checkers -> rubric

The skeleton never reads ``ctx.seed``: the grader draws the fault schedule from it and
passes it in, and everything the service receives comes from fresh randomness (the
functional tests' tag, the workload's seed, both recorded), so a service cannot recognise
a run and learn a seed's schedule. :meth:`ServiceGrader.recheck` scores a stored history
the same way offline (``infragym check``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..checkers import Checker, CheckResult, Verdict, check_all
from ..history import History, OpType
from ..nemesis import FaultTarget, Nemesis, Schedule, ScheduledFault
from ..rubric import RewardResult, Rubric
from ..sandbox import Cluster, Host
from ..tasks import TaskSpec, Variant
from ..workload import (
    ReadBack,
    Runner,
    Stream,
    Target,
    TransportName,
    final_read_stream,
    parse_targets,
    read_back,
)
from ._context import GradeContext, GradeOutcome
from ._deploy import deploy, wait_all_listening
from ._finish import finish, gated_checks, recheck, record_functional
from ._functional import not_run, run_tests
from ._probe import HttpProbe, ProbeTest
from ._together import START_LEAD_S, StartAt, load_under_faults, measured

__all__ = [
    "Contract",
    "FinalReadsFn",
    "Functional",
    "Phases",
    "ServiceGrader",
    "env_from_spec",
    "kv_final_reads",
]

EnvFn = Callable[[Cluster, Host], Mapping[str, str]]
FunctionalTest = tuple[str, ProbeTest]
WorkloadFn = Callable[[Mapping[str, str], int, float], Sequence[Stream]]
"""``(urls by host, workload seed, seconds of load)`` to the streams of the load phase."""
FinalReadsFn = Callable[[History, Sequence[Target], float], Stream | None]
"""``(the history so far, the hosts as targets, each read's timeout)`` to the stream read
after the final heal, or None for none."""


def kv_final_reads(history: History, targets: Sequence[Target], timeout: float) -> Stream:
    """Every key the history wrote, read on every host (key-value APIs)."""
    return final_read_stream(history, targets, timeout=timeout)


def env_from_spec(
    spec: TaskSpec, variant: Variant | None = None
) -> Callable[[Cluster, Host], dict[str, str]]:
    """Each host's environment by the task's ``[contract.env]`` in ``variant`` (default:
    the default variant; give ``ctx.variant``): what the dev hosts got."""

    def env(cluster: Cluster, host: Host) -> dict[str, str]:
        hosts = {h.name: h.address for h in cluster.hosts}
        return spec.host_env(host.name, hosts, variant, cluster.subnet)

    return env


@dataclass(frozen=True)
class Contract:
    """How the agent's system is deployed: ``start`` run as a restartable service named
    ``name`` on every host with ``env(cluster, host)``; each must listen on ``port`` within
    ``listen_s`` (a start command that exits fails at once)."""

    start: Sequence[str]
    port: int
    env: EnvFn
    name: str = "app"
    listen_s: float = 10.0


@dataclass(frozen=True)
class Functional:
    """The functional phase: ``tests`` in order against an :class:`HttpProbe` (``prefix``,
    ``visible_s``; each request bounded by ``request_s``), each test within ``per_test_s``
    and all within ``total_s``. Before them every node gets ``ready_s`` to answer a GET of
    ``ready_path`` (``{tag}`` is the run's tag) with 200 or 404, e.g. to elect a leader."""

    tests: Sequence[FunctionalTest]
    prefix: str = ""
    request_s: float = 1.0
    visible_s: float = 1.0
    per_test_s: float = 6.0
    total_s: float = 30.0
    ready_path: str | None = None
    ready_s: float = 10.0


@dataclass(frozen=True)
class Phases:
    """The under-faults phase's timings: load runs ``tail_s`` past the last fault's end;
    after the final heal every host gets ``listen_s`` to listen again and then ``settle_s``
    before the final reads (each bounded by ``final_read_s``; a read that got no answer is
    read again up to ``final_retries`` times, ``final_retry_pause_s`` apart: see
    :func:`~infragym.workload.read_back`); the checkers get at most ``check_budget_s``
    (less when the grading budget runs short). The load and the faults start together
    ``start_lead_s`` after the nemesis's checks (room for the load's thread to start).
    ``final_reads_judged``: whether the final reads' first attempts count for
    availability (False: they collect state only, availability is the load's)."""

    tail_s: float = 1.5
    settle_s: float = 2.0
    listen_s: float = 10.0
    final_read_s: float = 2.0
    check_budget_s: float = 20.0
    final_retries: int = 2
    final_retry_pause_s: float = 1.0
    start_lead_s: float = START_LEAD_S
    final_reads_judged: bool = True


@dataclass(frozen=True)
class ServiceGrader:
    """A grader for a service deployed on every host of a cluster (see the module doc).

    ``checkers(budget_s)`` gives the checks of the under-faults phase; ``rubric`` must
    have a ``functional`` gate, which a failed functional phase fails (the other checks
    are then reported as not run: a system that breaks its contract earns nothing for
    robustness it cannot show). ``final_reads`` makes what is read after the final heal
    (by default every written key on every host; None reads nothing, e.g. for a service
    with no state to read back). ``fault_targets`` are the fire-time targets the schedule
    may name as ``"@name"`` (``nemesis.FaultTarget``: "whichever host is primary when it fires").
    ``transport`` is the load's and the final reads' HTTP client (``workload.Runner``):
    ``"lean"`` costs the grading machine about half the CPU per operation of ``"aiohttp"``.
    """

    contract: Contract
    functional: Functional
    workload: WorkloadFn
    checkers: Callable[[float], Sequence[Checker]]
    rubric: Rubric
    phases: Phases = field(default_factory=Phases)
    final_reads: FinalReadsFn | None = kv_final_reads
    fault_targets: Mapping[str, FaultTarget] = field(default_factory=dict)
    transport: TransportName = "aiohttp"

    async def grade(self, ctx: GradeContext, cluster: Cluster, schedule: Schedule) -> GradeOutcome:
        """Deploy on ``cluster``, test, load under ``schedule``, check and score."""
        c = self.contract
        deployed = await deploy(
            cluster, c.start, lambda h: c.env(cluster, h), port=c.port, timeout=c.listen_s,
            name=c.name,
        )  # fmt: skip
        notes = list(deployed.problems)
        tests: dict[str, str | None] = {}
        problem = "; ".join(notes) if notes else None
        if problem is None:
            ctx.progress("functional tests")
            urls = deployed.urls
            tests = await asyncio.to_thread(cluster.run_client, lambda: self._functional(urls))
            notes += [f"functional test {n} failed: {e}" for n, e in tests.items() if e]
        functional = record_functional(ctx.history, tests, problem)
        (ctx.artifacts_dir / "functional.json").write_text(
            json.dumps({"score": functional.score, "tests": tests}, indent=2, ensure_ascii=False)
        )
        if functional.verdict is not Verdict.PASS:
            skipped = not_run("the functional contract failed", gated_checks(self.rubric))
            results = {"functional": functional, **skipped}
            return finish(self.rubric, results, functional.score, notes)
        results = await self.under_faults(ctx, cluster, deployed.urls, schedule, notes)
        results["functional"] = functional
        return finish(self.rubric, results, functional.score, notes)

    async def _functional(self, urls: Mapping[str, str]) -> dict[str, str | None]:
        f = self.functional
        # a fresh token, never the seed: nothing the service receives may tell it the seed
        async with HttpProbe.open(
            urls, request_s=f.request_s, prefix=f.prefix, visible_s=f.visible_s
        ) as probe:
            if f.ready_path is not None:
                await probe.ready(f.ready_path.format(tag=probe.tag), f.ready_s)
            return await run_tests(f.tests, probe, per_test_s=f.per_test_s, total_s=f.total_s)

    async def under_faults(
        self,
        ctx: GradeContext,
        cluster: Cluster,
        urls: Mapping[str, str],
        schedule: Schedule,
        notes: list[str],
    ) -> dict[str, CheckResult]:
        """Load under ``schedule``, heal, wait, settle, final reads; the check results."""
        (ctx.artifacts_dir / "schedule.json").write_text(json.dumps(schedule.to_json(), indent=2))
        notes.append("faults: " + "; ".join(map(_describe, schedule.faults)))
        # fresh randomness, not the seed (which would let a service recognise its run);
        # recorded so a history can be re-checked and replayed
        workload_seed = secrets.randbits(63)
        ctx.history.meta["workload_seed"] = workload_seed
        (ctx.artifacts_dir / "workload.json").write_text(json.dumps({"seed": workload_seed}))
        p = self.phases
        duration = schedule.end + p.tail_s
        streams = self.workload(urls, workload_seed, duration)

        ctx.progress(f"load for {duration:.0f} s under {len(schedule.faults)} faults")

        async def load(start_at: StartAt) -> None:
            async with Runner(ctx.history, ctx.clock, transport=self.transport) as runner:
                await runner.run(*streams, at=await start_at())

        async with Nemesis(cluster, ctx.history, ctx.clock, targets=self.fault_targets) as nemesis:
            await load_under_faults(cluster, nemesis, schedule, ctx.clock, load, p.start_lead_s)
        down = await wait_all_listening(cluster, self.contract.port, p.listen_s)
        notes += [f"after the final heal: {d}" for d in down]
        await asyncio.sleep(p.settle_s)
        final = (
            None
            if self.final_reads is None
            else self.final_reads(ctx.history, parse_targets(urls), p.final_read_s)
        )
        if final is not None:
            # re-reads stop while the checkers' budget and a margin are left
            deadline = ctx.clock.now() + ctx.remaining() - p.check_budget_s - 10.0

            async def final_reads(stream: Stream = final) -> ReadBack:
                return await read_back(
                    ctx.history, ctx.clock, stream, urls, retries=p.final_retries,
                    pause_s=p.final_retry_pause_s, deadline=deadline, transport=self.transport,
                    first_counts=p.final_reads_judged,
                )  # fmt: skip

            ctx.progress("final reads")
            with measured(cluster):  # an unanswered read leaves writes unjudged: timed too
                back = await asyncio.to_thread(cluster.run_client, final_reads)
            if back.unanswered:
                notes.append(
                    f"final reads: {back.unanswered} (host, key) pair(s) got no answer in "
                    f"{back.attempts} attempt(s)"
                )
        ops = ctx.history.operations()
        counts = {t.value: sum(op.outcome is t for op in ops) for t in OpType}
        counts.pop(OpType.INVOKE.value)
        notes.append(
            f"workload: {len(ops)} operations, " + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        ctx.progress("checking the history")
        budget = max(2.0, min(p.check_budget_s, ctx.remaining() - 10.0))
        return await asyncio.to_thread(check_all, list(self.checkers(budget)), ctx.history)

    def recheck(self, history: History, budget_s: float | None = None) -> RewardResult:
        """The reward of a stored history, offline: the same checks and rubric as
        :meth:`grade` (the functional gate as the history recorded it)."""
        budget = self.phases.check_budget_s if budget_s is None else budget_s
        return recheck(history, lambda: self.checkers(budget), self.rubric)


def _describe(f: ScheduledFault) -> str:
    topology = f.spec.param("topology")
    return (
        f"{f.at:.1f}s {f.spec.kind}({','.join(f.spec.targets)}"
        + (f" {topology}" if topology else "")
        + f") {f.duration:.1f}s"
    )
