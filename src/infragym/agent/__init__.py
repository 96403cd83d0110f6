"""Agents: what plays an episode. Scripted ones here; model-backed ones build on the same
protocol."""

from ._openai import (
    SYSTEM_PROMPT,
    Compaction,
    ModelConfigError,
    ModelError,
    OpenAIAgent,
    RequestUsage,
    fit_to_budget,
)
from ._operator import OperatorAgent, Shift, ShiftOver, live_noop_agent
from ._scripted import (
    Agent,
    ProbeAgent,
    ScriptedAgent,
    agent_from_spec,
    noop_agent,
    reference_agent,
    run_episode,
)

__all__ = [
    "SYSTEM_PROMPT",
    "Agent",
    "Compaction",
    "ModelConfigError",
    "ModelError",
    "OpenAIAgent",
    "OperatorAgent",
    "ProbeAgent",
    "RequestUsage",
    "ScriptedAgent",
    "Shift",
    "ShiftOver",
    "agent_from_spec",
    "fit_to_budget",
    "live_noop_agent",
    "noop_agent",
    "reference_agent",
    "run_episode",
]
