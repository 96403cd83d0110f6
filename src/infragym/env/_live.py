"""A live episode (``mode = "operate"``): the agent operates a running production system
through phases, and is graded on the live system as it goes.

``start`` builds the production cluster, deploys the task's ``inherit/`` system by
``[operate]`` (start command, port, service name, contract environment) and starts a
background client workload (GETs of ``[operate] probe`` at ``rate`` per second, spread
over the hosts) that records into one history until the episode ends. Then the phases run
in order, each opened by its ticket. A phase may start faults (its seeded incident
schedule, played by the nemesis from the phase's opening). It ends when the agent calls
``end_phase`` (or ``submit``), or at its step or time limit; its grader then runs on the
live cluster and that step's reward is the phase's share of the episode reward. Faults
still active are healed after the phase is graded; the damage they did stays.

After the last phase (or ``submit``, or the episode's limits) the clients go on for
``handover_s`` (a system left broken spends the error budget), the audit runs, the
workload stops, and the episode's reward is the weighted phase rewards, the service
level of the whole history against the error budget, and the audit. The step rewards of
an episode add up to its reward. Nothing is rebuilt between phases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..grading import (
    GradeResult,
    LiveContext,
    PhaseScore,
    copy_workspace,
    deploy,
    episode_reward,
    import_grader,
    phase_score,
    phase_shares,
    service_level,
)
from ..history import Clock, History
from ..nemesis import FaultSpec, Nemesis, Schedule, ScheduledFault, build_fault
from ..sandbox import Cluster, ServiceSpec
from ..tasks import Limits as TaskLimits
from ..tasks import OperateSpec, PhaseSpec, Task, Variant, hidden_paths
from ..workload import KVGenerator, Mix, Op, RequestGenerator, Runner, Stream, parse_targets
from ._live_tools import LiveTools
from ._tools import validate_arguments
from ._types import (
    EndReason,
    EnvOptions,
    EpisodeError,
    StepInfo,
    StepResult,
    ToolCall,
    ToolError,
    ToolObservation,
)

__all__ = [
    "LiveEpisode",
    "episode_hosts",
    "growth_plan",
    "phase_schedule",
    "phase_schedules",
    "ticket_text",
]

LOAD_STOP_S = 10.0  # the workload drains within its requests' timeout; this bounds it


def ticket_text(task: Task, plan: Sequence[tuple[Variant, tuple[str, ...]]], index: int) -> str:
    """What the agent reads when phase ``index`` (0-based) opens: its ticket rendered for
    the cluster as the phase opens (``plan``: :func:`growth_plan`)."""
    op = task.spec.operate
    assert op is not None
    grown, new = plan[index]
    body = task.render_ticket(op.phases[index], grown, new)
    return (
        f"## Ticket {index + 1} of {len(op.phases)}: {op.phases[index].name}\n\n{body}\n\n"
        "(Call end_phase with a summary when this ticket is done.)"
    )


def growth_plan(task: Task, variant: Variant) -> list[tuple[Variant, tuple[str, ...]]]:
    """Per phase, the variant of the production cluster once it opened (grown by its
    ``add_hosts``, if any) and the hosts it added (a pure function of the task and the
    variant: the names and addresses of added hosts are known before they exist)."""
    op = task.spec.operate
    assert op is not None
    out = []
    for ph in op.phases:
        new: tuple[str, ...] = ()
        if ph.add_hosts is not None:
            variant, new = task.spec.grow(variant, ph.add_hosts)
        out.append((variant, new))
    return out


def episode_hosts(task: Task, variant: Variant) -> tuple[str, ...]:
    """Every production host of an episode of ``variant``: those at reset, then those
    phases add (the operator's tools name them all; one not added yet is an error)."""
    return growth_plan(task, variant)[-1][0].host_names


def phase_schedule(task: Task, ph: PhaseSpec, seed: int, hosts: list[str]) -> Schedule:
    """The phase's incident schedule of ``seed``: hosts and times drawn from it (a pure
    function of the task, the phase and the seed), relative to the phase's opening."""
    rng = random.Random(f"{task.name}:{ph.name}:{seed}")
    faults = []
    for j, f in enumerate(ph.faults):
        host = rng.choice(hosts) if f.host == "any" else f.host
        at = round(rng.uniform(*f.at), 3)
        spec = FaultSpec(f.kind, (host,), tuple(sorted(f.params.items())))
        faults.append(ScheduledFault(at, f.duration, spec, f"{ph.name}-{f.kind}-{j + 1}"))
    for sf in faults:
        build_fault(sf.spec, sf.label, hosts)  # a bad kind, host or parameter: fail now
    return Schedule(tuple(faults), seed)


def phase_schedules(task: Task, variant: Variant, seed: int) -> dict[str, Schedule]:
    """Every phase's incident schedule of ``seed``, its hosts drawn among those the
    cluster has once the phase opened (the hosts it adds included)."""
    op = task.spec.operate
    assert op is not None
    return {
        ph.name: phase_schedule(task, ph, seed, list(grown.host_names))
        for ph, (grown, _) in zip(op.phases, growth_plan(task, variant), strict=True)
    }


@dataclass(frozen=True)
class _Until:
    """The live clients' generator: the last of ``gens`` (a growth may add one with more
    targets, taken from the next operation on), until ``stop`` is set (the episode's
    end)."""

    gens: list[RequestGenerator | KVGenerator]
    stop: threading.Event

    @property
    def name(self) -> str:
        return self.gens[0].name

    def ops(self) -> Iterator[Op]:
        while not self.stop.is_set():
            gen = self.gens[-1]
            for op in gen.ops():
                if self.stop.is_set():
                    return
                if self.gens[-1] is not gen:
                    break
                yield op

    def default_client(self) -> Any:
        return self.gens[0].default_client()


@dataclass
class _Phase:
    spec: PhaseSpec
    index: int
    opened: float  # monotonic
    opened_clock: float  # on the history's clock
    steps: int = 0
    faults: asyncio.Task[None] | None = None


@dataclass
class LiveEpisode:
    task: Task
    seed: int
    variant: Variant
    dir: Path
    limits: TaskLimits
    options: EnvOptions
    history: History = field(default_factory=History)
    clock: Clock = field(default_factory=Clock)
    cluster: Cluster | None = None
    urls: dict[str, str] = field(default_factory=dict)
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    tools: LiveTools | None = None
    steps: int = 0
    started: float = 0.0
    deadline: float = 0.0
    rewarded: float = 0.0  # the step rewards returned so far
    scores: dict[str, PhaseScore] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    phase: _Phase | None = None
    _module: ModuleType | None = None
    _nemesis: Nemesis | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _load: asyncio.Task[Any] | None = None
    _t0: float = field(default_factory=time.monotonic)
    _schedules: dict[str, Schedule] = field(default_factory=dict)
    _plan: list[tuple[Variant, tuple[str, ...]]] = field(default_factory=list)
    _gens: list[RequestGenerator | KVGenerator] = field(default_factory=list)
    _in_thread: Callable[[Callable[[], None]], Any] | None = None

    @property
    def op(self) -> OperateSpec:
        assert self.task.spec.operate is not None
        return self.task.spec.operate

    # -- start ---------------------------------------------------------------------------

    def _build(self) -> None:
        names = list(self.variant.host_names)
        app = self.dir / "inherit"
        copy_workspace(self.task.inherited(), app)
        roles = self.variant.cluster_options(names, None)
        self.cluster = Cluster(
            names, app=app, artifacts_dir=self.dir / "hosts",
            hidden=hidden_paths(self.task.path), **roles,
        )  # fmt: skip
        self.cluster.start()
        hosts = {h.name: h.address for h in self.cluster.hosts}
        self.env = {
            n: self.task.spec.host_env(n, hosts, self.variant, self.cluster.subnet) for n in hosts
        }

    async def start(self, in_thread: Callable[[Callable[[], None]], Any]) -> None:
        """Build, deploy, start the workload and open the first phase."""
        self._module = import_grader(self.task)
        self._in_thread = in_thread
        self._plan = growth_plan(self.task, self.variant)
        await in_thread(self._build)
        c = self.cluster
        assert c is not None
        op = self.op
        self._schedules = phase_schedules(self.task, self.variant, self.seed)
        deployed = await deploy(
            c, op.start, lambda h: self.env[h.name], port=op.port, timeout=op.listen_s,
            name=op.service,
        )  # fmt: skip
        if deployed.problems:
            raise EpisodeError(
                "the inherited system did not start (a bug of the task): "
                + "; ".join(deployed.problems)
            )
        self.urls = dict(deployed.urls)
        self.history.meta.update(
            {"task": self.task.name, "seed": self.seed, "variant": self.variant.to_dict(),
             "mode": "operate"}
        )  # fmt: skip
        self._nemesis = Nemesis(c, self.history, self.clock)
        self._load = asyncio.create_task(asyncio.to_thread(c.run_client, self._run_load))
        self.tools = LiveTools(c, op, self.limits, self.options, self.history, self.clock, self.env)
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.agent_wall_s
        await self._open(0)

    def _generator(self, hosts: list[str]) -> RequestGenerator | KVGenerator:
        """The clients' generator over ``hosts``: the n-th of the episode is named
        ``live`` then ``live-2``..., so every value the clients write stays unique."""
        op = self.op
        n = len(self._gens) + 1
        name = "live" if n == 1 else f"live-{n}"
        targets = parse_targets({h: self.urls[h] for h in hosts})
        if op.workload == "kv":
            mix = Mix(read=1.0 - op.writes, write=op.writes)
            return KVGenerator(targets, seed=self.seed + n - 1, mix=mix, keys=op.keys, name=name)
        return RequestGenerator(targets, op.probe, name=name)

    def _serve_added(self, ph: PhaseSpec) -> None:
        """After a phase that added hosts with ``clients = true`` is graded, the clients
        send to every host of the cluster from their next request on."""
        assert self.cluster is not None
        hosts = list(self.cluster.names)
        self._gens.append(self._generator(hosts))
        self.history.meta.setdefault("client_targets", []).append(
            {"time": self.clock.now(), "phase": ph.name, "hosts": hosts}
        )

    async def _run_load(self) -> None:
        op = self.op
        self._gens.append(self._generator(list(self.urls)))
        gen = _Until(self._gens, self._stop)
        # long enough for any episode: the stop event ends it
        duration = self.limits.agent_wall_s * 2 + 3600
        # not weighted as a grading's load is (grading.measured): the agent's own work runs
        # on these hosts all episode long, and must not outweigh other runs' for an hour
        async with Runner(self.history, self.clock, max_in_flight=256) as runner:
            await runner.run(Stream(gen, rate=op.rate, duration=duration, timeout=op.timeout_s))

    async def _grow(self, index: int) -> dict[str, str]:
        """Add the hosts phase ``index`` adds (see ``_operate``); their names and
        addresses. The new hosts' contract is the grown cluster's; the others keep theirs."""
        ph = self.op.phases[index]
        grown, new = self._plan[index]
        add = ph.add_hosts
        c = self.cluster
        assert add is not None and c is not None and self._in_thread is not None
        options = grown.cluster_options(new, None)

        def build() -> None:
            c.add_hosts(new, **options)

        try:
            await self._in_thread(build)
        except Exception as exc:
            raise EpisodeError(
                f"the platform could not add the hosts of phase {ph.name} ({exc}); the episode "
                "is over and has no reward"
            ) from exc
        self.variant = grown
        hosts = {h.name: h.address for h in c.hosts}
        for n in new:
            self.env[n] = self.task.spec.host_env(n, hosts, grown, c.subnet)
            self.urls[n] = f"http://{hosts[n]}:{self.op.port}"
        op = self.op
        if add.start:
            deployed = await deploy(
                c, op.start, lambda h: self.env[h.name], port=op.port, timeout=op.listen_s,
                name=op.service, hosts=new,
            )  # fmt: skip
            if deployed.problems:
                raise EpisodeError(
                    f"the service did not start on the hosts phase {ph.name} adds (a bug of "
                    "the task): " + "; ".join(deployed.problems)
                )
        else:
            for n in new:  # the service tool starts it, as on the other hosts
                c.host(n).services[op.service] = ServiceSpec(
                    op.service, tuple(op.start), dict(self.env[n])
                )
        added = {n: hosts[n] for n in new}
        self.history.meta.setdefault("hosts_added", []).append(
            {"time": self.clock.now(), "phase": ph.name, "role": add.role, "hosts": added,
             "started": add.start}
        )  # fmt: skip
        return added

    async def _open(self, index: int) -> None:
        ph = self.op.phases[index]
        added = await self._grow(index) if ph.add_hosts is not None else {}
        self.phase = _Phase(ph, index, time.monotonic(), self.clock.now())
        entry: dict[str, Any] = {"name": ph.name, "opened": self.phase.opened_clock}
        if added:
            entry["added_hosts"] = added
        self.history.meta.setdefault("phases", []).append(entry)
        schedule = self._schedules[ph.name]
        if schedule.faults and self._nemesis is not None:
            (self.dir / f"schedule-{ph.name}.json").write_text(
                json.dumps(schedule.to_json(), indent=2)
            )
            self.phase.faults = asyncio.create_task(self._nemesis.run(schedule))

    # -- steps ---------------------------------------------------------------------------

    async def step(self, call: ToolCall) -> StepResult:
        ph = self.phase
        assert ph is not None and self.tools is not None
        if self._load is not None and self._load.done():
            why = "it was cancelled" if self._load.cancelled() else repr(self._load.exception())
            raise EpisodeError(
                f"the background workload stopped ({why}): the episode's history is "
                "incomplete, so it is over and has no reward"
            )
        self.steps += 1
        ph.steps += 1
        now = time.monotonic()
        info = StepInfo(step=self.steps, elapsed_s=now - self.started, tool=call.name)
        info["phase_index"] = ph.index
        remaining = min(self.deadline - now, ph.opened + ph.spec.max_s - now)
        if remaining <= 0:
            over = now >= self.deadline
            obs = ToolObservation(
                f"the time of {'the episode' if over else 'this ticket'} is over",
                call.name, call.id, True,
            )  # fmt: skip
            return await self._end_phase(obs, info, "", "wall_time" if over else "phase_limit")
        try:
            obs, ended, summary = await self._call(call, remaining, info)
        except ToolError as exc:
            obs, ended, summary = (
                ToolObservation(f"error: {exc}", call.name, call.id, True),
                None,
                "",
            )
        except Exception as exc:
            raise EpisodeError(
                f"the platform failed while running {call.name}: {exc}; the episode is over "
                "and has no reward"
            ) from exc
        info["is_error"] = obs.is_error
        if ended is not None:
            return await self._end_phase(obs, info, summary, ended)
        now = time.monotonic()
        if self.steps >= self.limits.max_steps or now >= self.deadline:
            why = "max_steps" if self.steps >= self.limits.max_steps else "wall_time"
            return await self._end_phase(obs, info, "", why)
        if ph.steps >= ph.spec.max_steps or now >= ph.opened + ph.spec.max_s:
            return await self._end_phase(obs, info, "", "phase_limit")
        return StepResult(obs, 0.0, False, False, info)

    async def _call(
        self, call: ToolCall, remaining: float, info: StepInfo
    ) -> tuple[ToolObservation, str | None, str]:
        tools = self.tools
        assert tools is not None
        by_name = {s.name: s for s in self.specs}
        spec = by_name.get(call.name)
        if spec is None:
            raise ToolError(
                f"there is no tool {call.name[:80]!r}; the tools are {', '.join(by_name)}"
            )
        args = validate_arguments(spec, call.decoded_arguments())
        text: str
        if call.name == "host_bash":
            timeout = min(
                float(args.get("timeout") or self.limits.command_timeout_s),
                self.limits.command_timeout_s, max(remaining, 0.001),
            )  # fmt: skip
            text, extra = await tools.host_bash(args, timeout)
            info.update(extra)  # type: ignore[typeddict-item]
        elif call.name == "service":
            text = await tools.service(args)
        elif call.name == "logs":
            text = tools.logs(args)
        elif call.name == "metrics":
            text = tools.metrics(args)
        elif call.name == "end_phase":
            return ToolObservation("", call.name, call.id), "end_phase", str(args["summary"])
        else:
            assert call.name == "submit"
            return ToolObservation("", call.name, call.id), "submit", ""
        return ToolObservation(text, call.name, call.id), None, ""

    @property
    def specs(self) -> tuple[Any, ...]:
        from ._live_tools import live_tool_specs

        # the plan's, not the grown variant's: every host the episode will ever have
        hosts = self._plan[-1][0].host_names if self._plan else self.variant.host_names
        return live_tool_specs(hosts, self.op, self.limits, self.options)

    # -- phase ends ----------------------------------------------------------------------

    async def _grade(
        self, name: str, fn_name: str, summary: str, budget: float, opened: float
    ) -> PhaseScore:
        assert self.cluster is not None and self._module is not None
        fn = getattr(self._module, fn_name, None)
        if fn is None or not asyncio.iscoroutinefunction(fn):
            raise EpisodeError(f"grader.py has no `async def {fn_name}(ctx)`")
        ctx = LiveContext(
            self.task.name, self.seed, self.variant, name, summary, self.cluster, self.urls,
            self.history, self.clock, opened, self.dir, budget, self.env,
            self.options.progress or (lambda msg: None),
        )  # fmt: skip
        try:
            value = await asyncio.wait_for(fn(ctx), timeout=budget)
            return phase_score(value, f"{fn_name} of {self.task.name}")
        except TimeoutError:
            raise EpisodeError(
                f"{fn_name} exceeded its budget of {budget:g} s (a grader bug); the episode is "
                "over and has no reward"
            ) from None
        except EpisodeError:
            raise
        except Exception as exc:
            raise EpisodeError(
                f"{fn_name} raised {type(exc).__name__}: {exc}; the episode is over and has no "
                "reward"
            ) from exc

    async def _stop_faults(self, ph: _Phase) -> None:
        """End the phase's incident schedule. Every fault it schedules is applied first
        (waiting for those not yet due): ending a phase early never dodges its incident,
        which the phase's grader then sees untreated. Heals still due are left to the
        nemesis's heal after grading."""
        if ph.faults is not None:
            labels = {f.label for f in self._schedules[ph.spec.name].faults}
            due = ph.opened_clock + self._schedules[ph.spec.name].last_apply

            def applied() -> set[str]:
                return {
                    e.label for e in self.history.faults
                    if e.action.value == "apply" and e.label in labels
                }  # fmt: skip

            while not ph.faults.done() and (self.clock.now() < due or applied() != labels):
                await asyncio.wait([ph.faults], timeout=0.05)
            if not ph.faults.done():
                ph.faults.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([ph.faults])
            if not ph.faults.cancelled() and ph.faults.exception() is not None:
                exc = ph.faults.exception()
                raise EpisodeError(f"the incident of phase {ph.spec.name} failed: {exc}") from exc

    async def _end_phase(
        self, obs: ToolObservation, info: StepInfo, summary: str, reason: str
    ) -> StepResult:
        ph = self.phase
        assert ph is not None
        await self._stop_faults(ph)  # faults not yet fired never fire
        if self.tools is not None:  # the ticket is graded on the system as deployed
            await asyncio.to_thread(self.tools.stop_background)
        score = await self._grade(
            ph.spec.name, ph.spec.grader, summary, ph.spec.grade_s, ph.opened_clock
        )
        if self._nemesis is not None:
            await self._nemesis.final_heal()  # the causes go; the damage stays
        self.scores[ph.spec.name] = score
        self.reasons[ph.spec.name] = reason
        self.history.meta["phases"][-1].update(
            {"ended": self.clock.now(), "reward": score.reward, "end_reason": reason}
        )
        if ph.spec.add_hosts is not None and ph.spec.add_hosts.clients:
            self._serve_added(ph.spec)
        op = self.op
        shares = phase_shares({p.name: p.weight for p in op.phases}, op.weights)
        contribution = 0.0 if score.unknown else shares[ph.spec.name] * score.reward
        info["phase"] = {
            "name": ph.spec.name, "index": ph.index, "reward": score.reward,
            "contribution": contribution, "breakdown": dict(score.breakdown),
            "notes": list(score.notes), "end_reason": reason, "summary": summary,
            "unknown": score.unknown,
        }  # fmt: skip
        last = ph.index + 1 >= len(op.phases)
        if reason in ("submit", "max_steps", "wall_time") or last:
            end: EndReason = (
                "submit" if reason in ("submit", "end_phase")
                else "max_steps" if reason == "max_steps" else "wall_time"
            )  # fmt: skip
            return await self._finish(obs, info, end)
        self.rewarded += contribution
        await self._open(ph.index + 1)
        head = f"Ticket {ph.spec.name} closed ({reason.replace('_', ' ')})."
        text = "\n\n".join(
            t
            for t in (
                obs.content,
                head,
                ticket_text(self.task, self._plan, ph.index + 1),
            )
            if t
        )
        return StepResult(
            ToolObservation(text, obs.tool, obs.call_id, obs.is_error),
            contribution,
            False,
            False,
            info,
        )

    async def _finish(self, obs: ToolObservation, info: StepInfo, reason: EndReason) -> StepResult:
        op = self.op
        if self.tools is not None:  # the operator's own processes end with the shift too
            await asyncio.to_thread(self.tools.stop_background)
        # the handover: the clients go on a while, so a system left broken (or a shift
        # ended early) spends the error budget as it would for the next operator
        await asyncio.sleep(op.handover_s)
        writes = op.workload == "kv"
        if writes:
            # the writers stop first: the audit's final reads then judge every write
            # acknowledged, and the service level is the clients' alone
            await self.stop_load()
            end = self.clock.now()
            ops = self.history.operations()
        audit: PhaseScore | None = None
        if op.weights.get("audit", 0) > 0:
            audit = await self._grade("audit", "audit", "", op.audit_s, self._t0)
        if not writes:
            end = self.clock.now()
            await self.stop_load()
            ops = self.history.operations()
        allowance = None
        if op.budget_window_s is not None:  # a fixed budget per ticket reached
            per_ticket = (1.0 - op.slo) * op.rate * op.budget_window_s
            allowance = per_ticket * max(1, len(self.scores))
        sl = service_level(ops, op.slo, op.latency_ms, end=end, allowance=allowance)
        # a phase graded unknown (a judged artefact with no judge) is left out, weight and all
        unknown = {n for n, s in self.scores.items() if s.unknown}
        # the service level and the audit count in proportion to what the tickets earned
        # (their weighted grades; a ticket not reached earns 0): the availability of a
        # system nobody fixed, or a shift ended early, proves nothing about the operator
        known_w = {p.name: p.weight for p in op.phases if p.name not in unknown}
        total_w = sum(known_w.values())
        earned_w = sum(w * self.scores[n].reward for n, w in known_w.items() if n in self.scores)
        earned_share = earned_w / total_w if total_w > 0 else 1.0
        ep = episode_reward(
            {n: s.reward for n, s in self.scores.items() if n not in unknown},
            known_w,
            sl.score * earned_share,
            None if audit is None else audit.reward * earned_share,
            op.weights,
        )
        history_path = self.history.write_jsonl(self.dir / "history.jsonl")
        reached = [p.name for p in op.phases if p.name in self.scores]
        notes = [
            f"phase {n}: unknown, left out of the reward ({self.reasons[n].replace('_', ' ')})"
            if n in unknown
            else f"phase {n}: {self.scores[n].reward:.3f} ({self.reasons[n].replace('_', ' ')})"
            for n in reached
        ] + [f"phase {p.name}: not reached, 0" for p in op.phases if p.name not in self.scores]
        notes.append(
            f"service level: {sl.bad} of {sl.total} requests bad, availability "
            f"{sl.availability:.2%} against {op.slo:.2%}: {sl.score:.3f} of the error budget left"
        )
        if earned_share < 1.0:
            notes.append(
                f"the tickets earned {earned_share:.0%} of their weight: the service level and "
                "the audit count in that proportion"
            )
        if audit is not None:
            notes.append(f"audit: {audit.reward:.3f}")
            notes += list(audit.notes)
        for n in reached:
            notes += [f"{n}: {x}" for x in self.scores[n].notes]
        episode = {
            "reward": ep.reward, "phases": {n: self.scores[n].to_dict() for n in reached},
            "contributions": dict(ep.contributions), "service": sl.to_dict(),
            "audit": None if audit is None else audit.to_dict(), "weights": dict(ep.weights),
        }  # fmt: skip
        (self.dir / "episode.json").write_text(json.dumps(episode, indent=2, default=str))
        grade = GradeResult(
            task=self.task.name, seed=self.seed, variant=self.variant.to_dict(), reward=ep.reward,
            breakdown=ep.breakdown(),
            timeline=[
                {"time": e.time, "fault": e.fault, "action": e.action.value, "label": e.label,
                 "targets": list(e.targets)}
                for e in self.history.faults
            ],
            history_path=str(history_path), artifacts_dir=str(self.dir),
            timings={"total_s": time.monotonic() - self._t0}, notes=notes,
        )  # fmt: skip
        info["end_reason"] = reason
        info["episode"] = episode
        info["grade"] = grade
        reward = max(0.0, ep.reward - self.rewarded)
        self.rewarded = ep.reward
        return StepResult(obs, reward, reason == "submit", reason != "submit", info)

    # -- the end -------------------------------------------------------------------------

    async def stop_load(self) -> None:
        """Stop the background workload and wait for its last requests."""
        self._stop.set()
        if self._load is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._load), LOAD_STOP_S)
            if self._load.done() and not self._load.cancelled():
                self._load.exception()  # retrieved: a failed workload is no news at teardown

    async def close(self, in_thread: Callable[[Callable[[], None]], Any]) -> None:
        """Heal every fault, stop the workload and remove the cluster (idempotent)."""
        errors: list[str] = []
        ph = self.phase
        if ph is not None and ph.faults is not None and not ph.faults.done():
            ph.faults.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait([ph.faults])
        if self._nemesis is not None and self.cluster is not None:
            try:
                await self._nemesis.final_heal()
            except Exception as exc:
                errors.append(f"healing: {exc}")
        # the workload ends by itself once told (its last requests drain): before the
        # cluster goes, so no request is cut off by the teardown
        with contextlib.suppress(Exception):
            await self.stop_load()
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            try:
                await in_thread(cluster.close)  # cancels the workload's loop too
            except Exception as exc:
                errors.append(f"cluster: {exc}")
        if self._load is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait([self._load], timeout=LOAD_STOP_S)
            if self._load.done() and not self._load.cancelled():
                self._load.exception()
        if errors:
            from .._errors import ResourceError

            raise ResourceError("; ".join(errors))
