"""Trajectories: one versioned record per episode, exported for trainers exactly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_root
from tinytask import tiny_task

from infragym import ConfigError, rollout_many
from infragym.agent import SYSTEM_PROMPT, OpenAIAgent, ScriptedAgent
from infragym.env import ToolCall
from infragym.runner import (
    TRAJECTORIES_FILE,
    Trajectory,
    export_openai_jsonl,
    read_trajectories,
)
from infragym.testing import Reply, ScriptedModelServer

pytestmark = needs_root

GRADER = """
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    if ctx.seed == 3:
        raise RuntimeError("grader bug on seed 3")
    p = ctx.workspace / "answer.txt"
    ok = p.exists() and p.read_text().strip() == "42"
    res = CheckResult("answer", Verdict.PASS if ok else Verdict.FAIL, 1.0 if ok else 0.0, "")
    return GradeOutcome(Rubric([Criterion("answer")]).score({"answer": res}), 1.0)
"""


def failing_on_seed_3(tmp_path: Path) -> Path:
    return tiny_task(tmp_path, dev_hosts=0, grader=GRADER)


def scripted() -> ScriptedAgent:
    return ScriptedAgent([ToolCall("write_file", {"path": "answer.txt", "content": "42\n"}),
                          ToolCall("bash", {"command": "cat answer.txt"})])


def test_scripted_episodes_are_recorded_and_exported_exactly(tmp_path: Path) -> None:
    task = failing_on_seed_3(tmp_path)
    run_dir = tmp_path / "run"
    outs = asyncio.run(rollout_many(str(task), scripted, [1, 2, 3], 2, artifacts_dir=run_dir))
    lines = (run_dir / TRAJECTORIES_FILE).read_text().splitlines()
    assert len(lines) == 3
    trajs = {t.seed: t for t in read_trajectories(run_dir)}
    t1 = trajs[1]
    assert t1.schema_version == 1 and t1.reward == 1.0 and t1.end_reason == "submit"
    assert t1.breakdown == {"answer": 1.0} and t1.tools
    roles = [m["role"] for m in t1.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant",
                     "tool"]
    assert t1.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}  # as a model's
    calls = [m["tool_calls"][0]["function"]["name"] for m in t1.messages if m["role"] ==
             "assistant"]
    assert calls == ["write_file", "bash", "submit"]
    assert "42" in t1.messages[5]["content"]  # the bash output the agent saw
    assert trajs[3].reward is None and "grader bug" in (trajs[3].error or "")
    assert Trajectory.model_validate_json(t1.model_dump_json()) == t1
    assert [o.trajectory.seed for o in outs if o.trajectory] == [1, 2, 3]
    with pytest.raises(ConfigError, match=rf"{run_dir} holds a run of another configuration "
                       r"\(seeds: \[1, 2, 3\] there, \[4\] here\)"):
        asyncio.run(rollout_many(str(task), scripted, [4], 1, artifacts_dir=run_dir))
    assert len((run_dir / TRAJECTORIES_FILE).read_text().splitlines()) == 3  # not appended

    out = tmp_path / "export.jsonl"
    assert export_openai_jsonl(run_dir, out) == 2  # the platform failure has no reward
    exported = [json.loads(x) for x in out.read_text().splitlines()]
    assert {e["seed"] for e in exported} == {1, 2}
    for e in exported:
        assert e["messages"] == trajs[e["seed"]].messages  # round-trips exactly
        assert e["reward"] == 1.0 and e["tools"] == trajs[e["seed"]].tools

    r = subprocess.run([sys.executable, "-m", "infragym.cli.main", "export", str(run_dir)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and "wrote 2 episode(s)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "infragym.cli.main", "export",
                        str(tmp_path / "nothing-here")],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "no trajectories.jsonl" in r.stderr


@pytest.mark.timeout(120)
def test_model_episodes_keep_the_model_transcript_and_usage(tmp_path: Path) -> None:
    task = failing_on_seed_3(tmp_path)
    script = [Reply.tool("write_file", {"path": "answer.txt", "content": "42"}),
              Reply.text("thinking out loud"),
              Reply.tool("submit", {})]

    async def main() -> list[Trajectory]:
        async with ScriptedModelServer(script, models=("m",), api_key="k") as server:
            agents: list[OpenAIAgent] = []

            def factory() -> OpenAIAgent:
                agents.append(OpenAIAgent(model="m", base_url=server.url, api_key="k"))
                return agents[-1]

            outs = await rollout_many(str(task), factory, [1], 1, artifacts_dir=tmp_path / "r")
            traj = outs[0].trajectory
            assert traj is not None and traj.messages == agents[0].messages
            return [traj]

    (traj,) = asyncio.run(main())
    assert traj.reward == 1.0 and traj.model == "m" and traj.agent == "openai:m"
    assert traj.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert traj.usage and all(u["total_tokens"] is not None for u in traj.usage)
    assert any(m.get("content") == "thinking out loud" for m in traj.messages)
