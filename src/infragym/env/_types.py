"""What goes into and comes out of an episode: actions, observations, options, errors.

::

    InfraGymError
    ├── ToolError       a bad tool call: shown to the model, the episode carries on
    └── EpisodeError    the platform failed: the episode ends with no reward (never 0)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypedDict

from .._errors import ConfigError, InfraGymError
from ..grading import GradeResult
from ..sandbox import WORKSTATION_LIMITS as DEFAULT_LIMITS
from ..sandbox import Limits
from ..tasks import Limits as TaskLimits

EndReason = Literal["submit", "max_steps", "wall_time"]


class ToolError(InfraGymError):
    """A tool call the model got wrong (unknown tool, bad arguments, a path outside the
    workspace). Its message is shown to the model and the episode carries on."""


class EpisodeError(InfraGymError):
    """The platform failed (a sandbox, a cluster, the grader): the episode is over and has
    no reward. ``grade`` holds the grading result when grading itself failed."""

    def __init__(self, message: str, grade: GradeResult | None = None) -> None:
        super().__init__(message)
        self.grade = grade


@dataclass(frozen=True)
class ToolCall:
    """An action: the tool to call and its arguments (a mapping, or the JSON text of one,
    as OpenAI-compatible APIs give it)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @classmethod
    def parse(cls, action: ToolCall | Mapping[str, Any]) -> ToolCall:
        """A ToolCall from itself, ``{"name", "arguments", "id"}`` or an OpenAI tool call
        (``{"id", "type": "function", "function": {"name", "arguments"}}``)."""
        if isinstance(action, ToolCall):
            return action
        if not isinstance(action, Mapping):
            raise TypeError(
                f"an action is a ToolCall or a mapping with 'name' and 'arguments', "
                f"not {type(action).__name__}"
            )
        fn = action.get("function")
        src = fn if isinstance(fn, Mapping) else action
        name = src.get("name")
        args = src.get("arguments", {})
        call_id = action.get("id")
        return cls(
            name if isinstance(name, str) else repr(name),
            args if isinstance(args, (Mapping, str)) else repr(args),
            call_id if isinstance(call_id, str) else None,
        )

    def decoded_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; invalid JSON is the model's mistake (a ToolError)."""
        if isinstance(self.arguments, Mapping):
            return dict(self.arguments)
        text = self.arguments.strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ToolError(f"the arguments of {self.name} are not valid JSON: {exc}") from None
        except RecursionError:
            raise ToolError(f"the arguments of {self.name} are nested too deeply") from None
        if not isinstance(value, dict):
            raise ToolError(f"the arguments of {self.name} must be a JSON object")
        return value


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: its name, what it does, its JSON Schema parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def openai(self) -> dict[str, Any]:
        """The tool in the OpenAI-compatible ``tools`` format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ResetObservation:
    """The start of an episode: what the agent is told and the tools it has. ``variant``
    is the task's variant the seed drew (``[variants]`` key to value): the instructions
    are rendered with it and the dev hosts built by it."""

    instructions: str
    tools: tuple[ToolSpec, ...]
    task: str
    seed: int
    dev_hosts: tuple[str, ...]
    limits: TaskLimits
    variant: Mapping[str, Any] = field(default_factory=dict)

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.openai() for t in self.tools]


@dataclass(frozen=True)
class ToolObservation:
    """The result of one tool call, as the model reads it."""

    content: str
    tool: str
    call_id: str | None = None
    is_error: bool = False

    def as_message(self) -> dict[str, Any]:
        """An OpenAI-compatible ``tool`` message answering the call."""
        return {"role": "tool", "tool_call_id": self.call_id, "content": self.content}


class StepInfo(TypedDict, total=False):
    """Diagnostics of a step. ``grade`` and ``end_reason`` come with the final step. In a
    live episode every step has ``phase_index``; the step that ends a phase has ``phase``
    (its name, reward in [0, 1], ``contribution`` to the episode reward, breakdown, notes,
    end reason, the agent's summary) and the final step ``episode`` (every part)."""

    step: int
    elapsed_s: float
    tool: str
    is_error: bool
    exit_code: int | None
    timed_out: bool
    output_bytes: int
    end_reason: EndReason
    grade: GradeResult
    phase_index: int
    phase: dict[str, Any]
    episode: dict[str, Any]


class StepResult(NamedTuple):
    """What :meth:`Env.step` returns; unpacks like Gymnasium's 5-tuple."""

    observation: ToolObservation
    reward: float
    terminated: bool
    truncated: bool
    info: StepInfo


@dataclass(frozen=True)
class EnvOptions:
    """How an :class:`Env` runs episodes. ``None`` limits take the task's own.

    ``sandbox_limits`` bound the workstation (pids, memory, CPU cores); ``workspace_bytes``
    is the size of the workspace (at most what grading accepts, so a workspace can always
    be graded); ``artifacts_dir`` is where each episode's grading artifacts go (default: a
    private directory under the system's temporary directory). A grading taken while the
    machine was overloaded (its measurements cannot be trusted) is taken again, up to
    ``grade_retries`` more times, each after waiting up to ``grade_retry_wait_s`` seconds
    for a calmer machine; then the episode fails with no reward.
    """

    max_output_bytes: int = 16384
    max_read_bytes: int = 65536
    max_write_bytes: int = 4 << 20
    max_steps: int | None = None
    agent_wall_s: float | None = None
    command_timeout_s: float | None = None
    sandbox_limits: Limits = DEFAULT_LIMITS
    dev_host_limits: Limits | None = None
    workspace_bytes: int = 64 << 20
    scratch_bytes: int = 256 << 20
    artifacts_dir: str | Path | None = None
    progress: Callable[[str], None] | None = None  # told what grading is doing
    grade_retries: int = 2
    grade_retry_wait_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_output_bytes", "max_read_bytes", "max_write_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 256:
                raise ConfigError(f"{name} must be a whole number >= 256, not {v!r}")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool)
            or self.max_steps < 1
        ):  # fmt: skip
            raise ConfigError(f"max_steps must be a whole number >= 1, not {self.max_steps!r}")
        for name in ("agent_wall_s", "command_timeout_s"):
            v = getattr(self, name)
            if v is not None and (
                not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0
            ):
                raise ConfigError(f"{name} must be a positive number of seconds, not {v!r}")
        if (
            not isinstance(self.grade_retries, int) or isinstance(self.grade_retries, bool)
            or self.grade_retries < 0
        ):  # fmt: skip
            raise ConfigError(
                f"grade_retries must be a whole number >= 0, not {self.grade_retries!r}"
            )
        v = self.grade_retry_wait_s
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
            raise ConfigError(f"grade_retry_wait_s must be a number of seconds >= 0, not {v!r}")
        if not isinstance(self.sandbox_limits, Limits):
            raise ConfigError(f"sandbox_limits must be a Limits, not {self.sandbox_limits!r}")
        if self.dev_host_limits is not None and not isinstance(self.dev_host_limits, Limits):
            raise ConfigError(f"dev_host_limits must be a Limits, not {self.dev_host_limits!r}")

    @classmethod
    def from_kwargs(cls, **options: Any) -> EnvOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown env option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**options)

    def task_limits(self, task: TaskLimits) -> TaskLimits:
        """The task's limits with this run's overrides applied."""
        return TaskLimits(
            max_steps=self.max_steps if self.max_steps is not None else task.max_steps,
            agent_wall_s=float(self.agent_wall_s or task.agent_wall_s),
            command_timeout_s=float(self.command_timeout_s or task.command_timeout_s),
        )
