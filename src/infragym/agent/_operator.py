"""Scripted operators: the reference tiers of a live task (``mode = "operate"``).

A live task's tier is an operator, not a workspace: ``solutions/<tier>/operator.py``
defines ``async def operate(shift)`` and works the shift through :class:`Shift`, reading
each observation as a model would and deciding what to call next (which host paged, what
the logs say). It is played through the Env like any agent, so a tier is graded by exactly
the path a model's episode takes.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .._errors import ConfigError, InfraGymError
from ..env import Env, StepResult, ToolCall
from ..tasks import Task

__all__ = ["OPERATOR_FILE", "OperatorAgent", "Shift", "ShiftOver", "live_noop_agent"]

OPERATOR_FILE = "operator.py"


class ShiftOver(InfraGymError):
    """The episode ended (the last ticket closed, or a limit): the operator stops."""


@dataclass
class Shift:
    """What an operator script drives: one live episode, one tool call at a time."""

    env: Env
    last: StepResult | None = None
    transcript: list[StepResult] = field(default_factory=list)
    phase: int = 0
    """The index of the ticket open now."""

    @property
    def over(self) -> bool:
        return self.last is not None and (self.last.terminated or self.last.truncated)

    async def call(self, tool: str, **arguments: Any) -> StepResult:
        """Call ``tool``; ShiftOver once the episode has ended."""
        if self.over:
            raise ShiftOver
        r = await self.env.step(ToolCall(tool, arguments))
        self.transcript.append(r)
        self.last = r
        if "phase" in r.info and not self.over:
            self.phase = int(r.info["phase"]["index"]) + 1
        return r

    async def bash(self, host: str, command: str, timeout: float | None = None) -> str:
        """``host_bash``'s output (the exit code line included)."""
        args: dict[str, Any] = {"host": host, "command": command}
        if timeout is not None:
            args["timeout"] = timeout
        return (await self.call("host_bash", **args)).observation.content

    async def service(self, host: str, action: str) -> str:
        return (await self.call("service", host=host, action=action)).observation.content

    async def end(self, summary: str) -> StepResult:
        """Close the current ticket with ``summary``."""
        return await self.call("end_phase", summary=summary)


def _import(path: Path, name: str) -> ModuleType:
    """Import ``path`` as ``name``; modules of its folder it imports (helpers the tiers
    share through overlays) are its own, not cached for another tier."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.remove(folder)
        for mod_name, mod in list(sys.modules.items()):
            if mod_name != name and str(getattr(mod, "__file__", "")).startswith(folder + "/"):
                del sys.modules[mod_name]
    return module


@dataclass
class OperatorAgent:
    """Plays ``solutions/<tier>/operator.py`` of a live task; submits if it returns
    before the shift is over."""

    task: Task
    tier: str
    transcript: list[StepResult] = field(default_factory=list)
    name: str = field(init=False)
    operate: Callable[[Shift], Awaitable[None]] = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"reference:{self.tier}"
        path = self.task.solution(self.tier) / OPERATOR_FILE
        if not path.is_file():
            raise ConfigError(
                f"tier {self.tier} of live task {self.task.name} has no {OPERATOR_FILE} "
                "(a live task's tier is an operator: async def operate(shift))"
            )
        mod = f"infragym_operator_{self.task.name}_{self.tier}".replace("-", "_")
        operate = getattr(_import(path, mod), "operate", None)
        if operate is None or not inspect.iscoroutinefunction(operate):
            raise ConfigError(f"{path} must define `async def operate(shift)`")
        self.operate = operate

    async def play(self, env: Env) -> StepResult:
        shift = Shift(env, transcript=self.transcript)
        try:
            await self.operate(shift)
        except ShiftOver:
            pass
        if not shift.over:
            await shift.call("submit")
        assert shift.last is not None
        return shift.last


@dataclass
class _EndEveryPhase:
    """A live task's no-op: closes every ticket at once, doing nothing."""

    name: str = "noop"

    async def play(self, env: Env) -> StepResult:
        shift = Shift(env)
        while not shift.over:
            await shift.end("done")
        assert shift.last is not None
        return shift.last


def live_noop_agent() -> _EndEveryPhase:
    """What a live task's ``noop`` tier plays: every ticket closed at once with "done"
    (the incidents still fire, so what they break stays broken)."""
    return _EndEveryPhase()
