"""Agents: what plays an episode. Scripted ones here; model-backed ones build on the same
protocol."""

from ._scripted import (
    Agent,
    ScriptedAgent,
    agent_from_spec,
    noop_agent,
    reference_agent,
    run_episode,
)

__all__ = [
    "Agent",
    "ScriptedAgent",
    "agent_from_spec",
    "noop_agent",
    "reference_agent",
    "run_episode",
]
