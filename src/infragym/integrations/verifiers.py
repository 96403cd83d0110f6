"""infragym tasks as a `verifiers <https://github.com/PrimeIntellect-ai/verifiers>`_ (v1)
environment, so its evaluator (``vf-eval``) and the trainers built on it (``prime-rl``)
run infragym episodes.

verifiers imports plugins by a bare module name, so the id is ``infragym-verifiers`` (the
top-level module :mod:`infragym_verifiers` re-exports this one). Each verifiers task is one
infragym episode, a task and a seed. The harness runs infragym's own tool loop
(:class:`~infragym.agent.OpenAIAgent`) in-process, with every model call sent through the
rollout's interception endpoint, so verifiers records the conversation on its trace as it
does for any harness, and applies the run's model and sampling settings. The model's
commands run in infragym's sandbox and hosts, never in the verifiers runtime. The reward
is the infragym grade; a platform failure fails the rollout (it has no reward), as it
does everywhere in infragym.

::

    env = make_env(tasks=["kv-replicated"], seeds=[1, 2])
    episodes = await run_group(env, next(iter(env.taskset)), 8,
                               model="my-model", base_url="http://127.0.0.1:8000/v1")
    pairs = [(e.traces[0].messages, e.traces[0].reward) for e in episodes if e.ok]
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from .._errors import ConfigError, InfraGymError

try:
    import verifiers.v1 as vf
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        "the verifiers integration needs the verifiers package: pip install 'infragym[verifiers]'"
    ) from exc

from ..agent import SYSTEM_PROMPT, ModelError, OpenAIAgent
from ..env import ToolCall, make
from ..tasks import find_task

__all__ = [
    "PLUGIN_ID",
    "InfraGymEnv",
    "InfraGymEnvConfig",
    "InfraGymHarness",
    "InfraGymHarnessConfig",
    "InfraGymState",
    "InfraGymTask",
    "InfraGymTaskData",
    "InfraGymTaskset",
    "InfraGymTasksetConfig",
    "make_env",
    "run_group",
]

PLUGIN_ID = "infragym-verifiers"


class InfraGymTaskData(vf.TaskData):
    """One episode: the infragym task (a name or a folder) and the seed of its faults."""

    task: str
    seed: int


class InfraGymState(vf.State):
    """What the episode left for scoring. verifiers keeps state off the wire; the trace
    carries the reward and the breakdown (as metrics) instead."""

    reward: float | None = None
    functional: float | None = None
    breakdown: dict[str, float] = Field(default_factory=dict)
    end_reason: str | None = None
    steps: int = 0
    phase_rewards: list[dict[str, Any]] = Field(default_factory=list)
    """A live episode's phases as they ended: step, phase, reward, contribution."""


def _state(trace: vf.Trace) -> InfraGymState:
    state = trace.state
    if not isinstance(state, InfraGymState):
        raise TypeError(f"an infragym trace has InfraGymState, not {type(state).__name__}")
    return state


class InfraGymTask(vf.Task[InfraGymTaskData, InfraGymState]):
    """Scores a finished episode with the grade infragym gave it."""

    @vf.reward
    async def infragym(self, trace: vf.Trace) -> float:
        reward = _state(trace).reward
        if reward is None:  # never graded: a failed rollout, not a 0
            raise RuntimeError("the episode has no infragym grade")
        return reward

    @vf.metric
    async def infragym_breakdown(self, trace: vf.Trace) -> dict[str, float]:
        state = _state(trace)
        scores = dict(state.breakdown)
        if state.functional is not None:
            scores["functional"] = state.functional
        scores["steps"] = float(state.steps)
        for p in state.phase_rewards:  # a live episode's intermediate rewards
            scores[f"phase/{p['phase']}"] = float(p["reward"])
            scores[f"phase/{p['phase']}/step"] = float(p["step"])
        return {f"infragym/{k}": v for k, v in scores.items()}


class InfraGymTasksetConfig(vf.TasksetConfig):
    """One verifiers task per (task, seed): ``tasks`` are infragym task names or folders."""

    id: str = PLUGIN_ID
    tasks: list[str] = Field(default_factory=lambda: ["kv-replicated"])
    seeds: list[int] = Field(default_factory=lambda: [1])


class InfraGymTaskset(vf.Taskset[InfraGymTask, InfraGymTasksetConfig]):
    def load(self) -> list[InfraGymTask]:
        if not self.config.tasks or not self.config.seeds:
            raise ConfigError("an infragym taskset needs at least one task and one seed")
        bad = [s for s in self.config.seeds if s < 0]
        if bad:
            raise ConfigError(f"seeds are whole numbers >= 0, not {bad}")
        out = []
        for name in self.config.tasks:
            task = find_task(name)  # a ConfigError naming the known tasks if unknown
            for seed in self.config.seeds:
                data = InfraGymTaskData(
                    id=f"{task.name}/{seed}",
                    name=task.name,
                    description=task.spec.summary,
                    prompt=task.instructions_for(seed),
                    task=name,
                    seed=seed,
                )
                out.append(InfraGymTask(data, self.config.task))
        return out


class InfraGymHarnessConfig(vf.HarnessConfig):
    """How episodes run. ``artifacts_dir``: where grading artifacts go (default: a private
    temporary directory); ``context_chars``: the agent's context budget; ``max_steps``:
    overrides the task's step limit."""

    id: str = PLUGIN_ID
    artifacts_dir: str | None = None
    context_chars: int = 400_000
    max_steps: int | None = None


class InfraGymHarness(vf.Harness[InfraGymHarnessConfig]):
    """infragym's tool loop, in-process, talking to the model through the interception."""

    APPENDS_SYSTEM_PROMPT = True
    EXECUTES_CODE = False  # the model's commands run in infragym's sandbox, not the runtime
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: vf.ModelContext,
        trace: vf.Trace,
        runtime: vf.Runtime,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: vf.TaskData,
        **_: Any,
    ) -> vf.ProgramResult:
        if not isinstance(data, InfraGymTaskData):
            data = InfraGymTaskData.model_validate(data.model_dump())
        options: dict[str, Any] = {}
        if self.config.artifacts_dir:
            options["artifacts_dir"] = Path(self.config.artifacts_dir)
        if self.config.max_steps is not None:
            options["max_steps"] = self.config.max_steps  # EnvOptions rejects < 1
        # a task's or the run's system prompt (e.g. verifiers' network notice) adds to
        # infragym's, which carries the rules of the tools and of submit
        system = "\n\n".join(p for p in (SYSTEM_PROMPT, data.system_prompt) if p)
        state = _state(trace)
        try:
            agent = OpenAIAgent(
                model=ctx.model,
                base_url=endpoint,
                api_key=secret,
                context_chars=self.config.context_chars,
                system_prompt=system,
                close_on_model_error=False,
            )
            env = make(data.task, **options)
            try:
                await env.reset(seed=data.seed)
                try:
                    final = await agent.play(env)
                except ModelError:
                    if trace.stop_condition is None:
                        raise  # the model server failed: no reward
                    # the run's own limit (--env.agent.max-turns, a token cap) refused the
                    # next turn: the episode ends there and is graded as it stands
                    final = await env.step(ToolCall("submit", {}))
            finally:
                state.phase_rewards = [dict(p) for p in env.phase_rewards]
                await env.close()
        except InfraGymError as exc:
            raise vf.HarnessError(f"infragym {data.task} seed {data.seed}: {exc}") from exc
        grade = final.info.get("grade")
        state.end_reason = (
            f"limit:{trace.stop_condition}"
            if trace.stop_condition
            else final.info.get("end_reason")
        )
        state.steps = final.info.get("step", 0)
        if grade is None or grade.reward is None:
            why = grade.error if grade is not None else "the episode ended without a grade"
            raise vf.HarnessError(f"infragym could not grade {data.task} seed {data.seed}: {why}")
        state.reward = grade.reward
        state.functional = grade.functional
        state.breakdown = dict(grade.breakdown)
        return vf.ProgramResult(exit_code=0, stdout="", stderr="")


class InfraGymEnvConfig(vf.EnvConfig):
    """The single-agent env with local defaults: the taskset above and a subprocess
    runtime (verifiers' default is a remote sandbox, which infragym does not need: its
    episodes bring their own)."""

    taskset: InfraGymTasksetConfig = InfraGymTasksetConfig()
    agent: vf.AgentConfig = vf.AgentConfig(runtime=vf.SubprocessConfig())


class InfraGymEnv(vf.Env[InfraGymEnvConfig]):
    """One agent plays each task: what ``vf-eval infragym-verifiers`` runs."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        await agents.agent.run(task)


def make_env(
    tasks: Sequence[str] = ("kv-replicated",), seeds: Sequence[int] = (1,), **harness: Any
) -> InfraGymEnv:
    """A verifiers env over ``tasks`` x ``seeds``; ``harness`` sets
    :class:`InfraGymHarnessConfig` fields (``artifacts_dir``, ``context_chars``...)."""
    config = InfraGymEnvConfig(
        taskset=InfraGymTasksetConfig(tasks=list(tasks), seeds=list(seeds)),
        agent=vf.AgentConfig(
            runtime=vf.SubprocessConfig(), harness=InfraGymHarnessConfig(**harness)
        ),
    )
    env = vf.load_environment(config)
    assert isinstance(env, InfraGymEnv)
    return env


async def run_group(
    env: vf.Env[Any],
    task: vf.Task,
    k: int,
    *,
    model: str,
    base_url: str,
    api_key_var: str = "OPENAI_API_KEY",
    max_concurrency: int | None = None,
) -> list[vf.Episode]:
    """``k`` independent episodes of ``task`` (a GRPO group), as verifiers episodes:
    ``episode.traces[0].messages`` and ``.reward`` are the pair a trainer takes;
    ``episode.ok`` is False for a failed rollout (its reward means nothing)."""
    if k < 1:
        raise ConfigError(f"a group needs at least one episode, not {k}")
    ctx = vf.ModelContext(
        model=model, client=vf.EvalClientConfig(base_url=base_url, api_key_var=api_key_var)
    )
    gate = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    async with env.serving():
        return list(
            await asyncio.gather(*(env.run_slot(slot, ctx, gate) for slot in env.slots(task, k)))
        )
