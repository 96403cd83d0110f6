"""What travels over the wire: OpenEnv's Action, Observation and State, for infragym."""

from __future__ import annotations

from typing import Any

from openenv.core.env_server import Action, Observation, State
from pydantic import Field


class ToolCallAction(Action):
    """One tool call: ``bash``, ``read_file``, ``write_file``, ``host_bash`` or ``submit``
    with its arguments (an object, or its JSON text as OpenAI-compatible APIs give it)."""

    name: str = Field(description="the tool to call")
    arguments: dict[str, Any] | str = Field(default_factory=dict, description="its arguments")
    id: str | None = Field(default=None, description="the call's id, echoed back")


class InfraGymObservation(Observation):
    """The result of one tool call. ``reward`` is 0 until the final step (submit or a
    limit), which carries the grade's reward and, in ``metadata["grade"]``, its breakdown."""

    content: str = Field(default="", description="what the tool printed, as the model reads it")
    tool: str = Field(default="", description="the tool that ran")
    call_id: str | None = Field(default=None, description="the id of the call it answers")
    is_error: bool = Field(default=False, description="a bad call: the episode carries on")


class InfraGymResetObservation(Observation):
    """The start of an episode: the task's instructions and the tools the agent has."""

    instructions: str = Field(description="the task, as the agent is told it")
    tools: list[dict[str, Any]] = Field(description="the tools, in OpenAI's tools format")
    task: str
    seed: int
    episode_id: str
    dev_hosts: list[str] = Field(default_factory=list)
    limits: dict[str, Any] = Field(description="max_steps, agent_wall_s, command_timeout_s")
    variant: dict[str, Any] = Field(
        default_factory=dict, description="the task's variant the seed drew"
    )


class InfraGymState(State):
    """The running episode: its id, steps taken and limits (``task`` is None before a
    reset and after the episode ended)."""

    task: str | None = None
    seed: int | None = None
    running: bool = False
    max_steps: int | None = None
    agent_wall_s: float | None = None
    command_timeout_s: float | None = None
    elapsed_s: float = 0.0
