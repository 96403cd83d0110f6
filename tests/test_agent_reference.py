"""Reference agents end to end through the public API: make -> reset -> tool calls ->
submit -> grading, the same path a model's episode takes. The naive tier (functional tests
pass, the faults fail it) and the no-op agent; the robust tier's path through the Env is
graded by the OpenAI agent's and the CLI's tests, and every tier's reward against its band
by ``check_task`` (tests/test_builtin_tasks.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import needs_root

from infragym import ConfigError, make
from infragym.agent import ScriptedAgent, agent_from_spec, run_episode
from infragym.env import ToolCall
from infragym.tasks import find_task

pytestmark = needs_root

BOUNDS = {"reference:naive": (0.0, 0.40), "noop": (0.0, 0.0)}


@pytest.mark.parametrize("spec", list(BOUNDS))
def test_reference_tiers_through_the_env(spec: str, tmp_path: Path) -> None:
    task = find_task("kv-replicated")
    agent = agent_from_spec(task, spec)
    final = asyncio.run(run_episode(make("kv-replicated", artifacts_dir=tmp_path), agent, 1))
    grade = final.info["grade"]
    lo, hi = BOUNDS[spec]
    assert final.terminated and final.info["end_reason"] == "submit"
    assert grade.error is None, grade.error
    assert lo <= final.reward <= hi, (spec, final.reward, grade.breakdown)
    assert final.reward == grade.reward
    if spec == "reference:naive":
        assert grade.functional == 1.0  # visible tests cannot tell them apart
    if isinstance(agent, ScriptedAgent) and spec.startswith("reference"):
        writes = [r for r in agent.transcript[:-1]]
        assert writes and not any(r.observation.is_error for r in writes)


def test_scripted_agent_stops_at_the_end_of_the_episode(tmp_path: Path) -> None:
    agent = ScriptedAgent([ToolCall("bash", {"command": "true"})] * 5)
    final = asyncio.run(run_episode(make("kv-replicated", artifacts_dir=tmp_path,
                                         max_steps=2), agent, 1))
    assert final.truncated and final.info["end_reason"] == "max_steps"
    assert len(agent.transcript) == 2
    assert final.reward == 0.0  # the starter workspace, graded as it stands


def test_bad_agent_specs() -> None:
    task = find_task("kv-replicated")
    with pytest.raises(ConfigError, match="no reference solution 'gold'"):
        agent_from_spec(task, "reference:gold")
    with pytest.raises(ConfigError, match="unknown agent"):
        agent_from_spec(task, "gpt:5")
