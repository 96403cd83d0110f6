"""Agents that need no model: a fixed script of tool calls.

The reference agent writes a reference solution into the workspace through the same
``write_file`` tool a model uses, then submits, so a reference tier is graded by exactly
the path a trained model's episode takes (sandbox, submit, kill, copy, grade).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .._errors import ConfigError
from ..env import Env, StepResult, ToolCall
from ..probes import probe
from ..tasks import Task

MAX_SCRIPT_FILE_BYTES = 1 << 20


class Agent(Protocol):
    """Plays one episode of ``env`` (already reset) to its end and returns the last step."""

    name: str

    async def play(self, env: Env) -> StepResult: ...


@dataclass
class ScriptedAgent:
    """Calls ``actions`` in order, then ``submit`` if the episode has not ended."""

    actions: Sequence[ToolCall] = ()
    name: str = "scripted"
    transcript: list[StepResult] = field(default_factory=list)

    async def play(self, env: Env) -> StepResult:
        for action in self.actions:
            result = await env.step(action)
            self.transcript.append(result)
            if result.terminated or result.truncated:
                return result
        result = await env.step(ToolCall("submit", {}))
        self.transcript.append(result)
        return result


def reference_agent(task: Task, tier: str) -> ScriptedAgent:
    """Writes ``solutions/<tier>/`` of ``task`` into the workspace, then submits."""
    root = task.solution(tier)
    actions = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if len(data) > MAX_SCRIPT_FILE_BYTES:
            raise ConfigError(f"{path} is over 1 MiB: a reference agent writes text files")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text: write_file takes text") from None
        actions.append(
            ToolCall("write_file", {"path": str(path.relative_to(root)), "content": text})
        )
    return ScriptedAgent(actions, name=f"reference:{tier}")


@dataclass
class ProbeAgent:
    """The catalogue's agent probe ``probe`` (:mod:`infragym.probes`) played on ``task``:
    its tool calls, built for the episode's dev hosts, then ``submit``."""

    task: Task
    probe: str
    transcript: list[StepResult] = field(default_factory=list)
    name: str = field(init=False)
    base: Path | None = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"probe:{self.probe}"
        if not probe(self.probe).agent:
            raise ConfigError(
                f"hack probe {self.probe} is a workspace, not an agent: grade it as one "
                "(infragym validate TASK --tiers --tier NAME)"
            )
        self.base = self.task.probe_base(self.probe)  # a clear error now, not mid-episode

    async def play(self, env: Env) -> StepResult:
        calls = probe(self.probe).actions(env.dev_hosts, self.base)
        script = ScriptedAgent([ToolCall(n, a) for n, a in calls], self.name, self.transcript)
        return await script.play(env)


def noop_agent() -> ScriptedAgent:
    """Submits the starter workspace untouched (it must earn 0)."""
    return ScriptedAgent((), name="noop")


def agent_from_spec(
    task: Task, spec: str, base_url: str | None = None, compaction: bool = False
) -> Agent:
    """``reference:TIER``, ``probe:NAME`` (an agent probe of :mod:`infragym.probes`),
    ``noop`` or ``openai:MODEL`` (with ``base_url`` or ``OPENAI_BASE_URL``, key from
    ``OPENAI_API_KEY``; ``compaction``: it summarises the episode to carry on past its
    context budget)."""
    kind, _, arg = spec.partition(":")
    if compaction and kind != "openai":
        raise ConfigError(f"compaction is for openai:MODEL agents, not {spec!r}")
    if kind == "reference":
        if task.spec.operate is not None:  # a live task's tier is an operator
            from ._operator import OperatorAgent

            return OperatorAgent(task, arg or "robust")
        return reference_agent(task, arg or "robust")
    if kind == "probe" and arg:
        return ProbeAgent(task, arg)
    if kind == "noop" and not arg:
        return noop_agent()
    if kind == "openai" and arg:
        from ._openai import OpenAIAgent

        return OpenAIAgent(model=arg, base_url=base_url, compaction=compaction)
    raise ConfigError(
        f"unknown agent {spec!r}: use reference:TIER, probe:NAME, noop or openai:MODEL"
    )


async def run_episode(env: Env, agent: Agent, seed: int) -> StepResult:
    """Reset ``env`` with ``seed``, let ``agent`` play, close the env whatever happens."""
    try:
        await env.reset(seed=seed)
        return await agent.play(env)
    finally:
        await env.close()
