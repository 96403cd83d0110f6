"""`infragym serve` under verifiers' own OpenEnv taskset (verifiers 0.3.1,
``verifiers.v1.tasksets.openenv``): an evaluation run by verifiers' eval runner against the
server, the model being infragym's scripted OpenAI-compatible server, records in its traces
the reward infragym's local Env gives the same tool calls, and leaves no session behind.

The taskset sends the model each observation with the server's action schema (our
``ToolCallAction``) and parses the model's reply as the action, so the scripted model
answers with ``{"name", "arguments", "id"}`` as JSON text. The agent's harness is
``tests/vfchat.py`` (a plain chat turn; see why there). Runs in ``.venv-openenv``, where
verifiers 0.3.1 (mcp<2) sits beside openenv; the main ``.venv``'s verifiers 0.4.0 ships
the taskset too but pins mcp 2, which openenv refuses (tests/test_verifiers.py covers
infragym's own verifiers integration there).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_root
from serving import runs_of, server, wait_gone
from tinytask import seeded_grader, tiny_task

from infragym.agent import reference_agent, run_episode
from infragym.env import Env
from infragym.tasks import find_task
from infragym.testing import Reply, ScriptedModelServer, by_turn, reference_script

openenv = pytest.importorskip("openenv", reason="needs the openenv extra (.venv-openenv)")
pytest.importorskip(
    "verifiers.v1.tasksets.openenv",
    reason="needs verifiers 0.3.1 beside openenv (.venv-openenv; ./setup.sh test installs it)",
)
from verifiers.v1.cli.eval.runner import run_eval  # noqa: E402
from verifiers.v1.configs.cli.eval import EvalConfig  # noqa: E402

pytestmark = needs_root

KEY_VAR = "INFRAGYM_TEST_MODEL_KEY"


def as_text(replies: list[Reply]) -> list[Reply]:
    """The tool calls of ``replies`` as the taskset's model gives actions: JSON text in
    the action schema, one call a reply."""
    return [
        Reply.text(json.dumps({"name": c.name, "arguments": dict(c.arguments), "id": f"call-{i}"}))
        for i, c in enumerate(c for r in replies for c in r.calls)
    ]


def evaluate(
    url: str, resets: list[dict[str, Any]], plan: list[Reply], out: Path, proc_pid: int
) -> tuple[list[dict[str, Any]], list[str], ScriptedModelServer]:
    """verifiers' eval of the OpenEnv taskset on ``url`` (in process, one episode at a
    time): the episodes it wrote to its traces.jsonl, the sandbox runs the server held
    while the model was asked, and the model server."""
    runs: set[str] = set()
    answer = by_turn(plan)

    def model_turn(body: dict[str, Any]) -> Reply:
        runs.update(runs_of(proc_pid))  # the episode is running on the server now
        return answer(body)

    async def run() -> ScriptedModelServer:
        async with ScriptedModelServer(api_key="test-key", then=model_turn) as model:
            config = EvalConfig.model_validate(
                {
                    "env": {
                        "taskset": {"id": "openenv", "base_url": url, "resets": resets},
                        "player": {
                            "harness": {"id": "vfchat"},
                            "runtime": {"type": "subprocess"},
                            "max_turns": len(plan) + 2,
                        },
                    },
                    "model": "test-model",
                    "client": {"base_url": model.url, "api_key_var": KEY_VAR},
                    "serve": None,  # in process, not verifiers' env-server worker pool
                    "rich": None,
                    "push": False,
                    "max_concurrent": 1,
                    "output_dir": str(out),
                }
            )
            episodes = await run_eval(config)
            assert [e.ok for e in episodes] == [True] * len(resets), [
                (e.errors, [t.errors for t in e.traces]) for e in episodes
            ]
            return model

    model = asyncio.run(run())
    (traces,) = out.glob("*/traces.jsonl")
    written = [json.loads(line) for line in traces.read_text().splitlines()]
    return written, sorted(runs), model


def reward_of(episode: dict[str, Any]) -> float:
    (trace,) = episode["traces"]
    return float(trace["rewards"]["openenv_reward"]["score"])


def assert_slot_free(url: str) -> None:
    """With --max-sessions 1, a new OpenEnv client gets an episode: the eval's session
    was closed (a session left open would refuse it with CAPACITY_REACHED)."""
    with openenv.GenericEnvClient(base_url=url, message_timeout_s=120).sync() as env:
        assert env.reset(seed=9).observation["seed"] == 9


def test_openenv_taskset_records_the_tiny_tasks_reward_per_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two resets (seeds 1 and 2) of a task whose reward depends on the seed: each
    episode's trace carries that seed's reward, as verifiers' taskset ships (no patch)."""
    monkeypatch.setenv(KEY_VAR, "test-key")
    tiny_task(tmp_path, grader=seeded_grader(sleep_s=0, slow_until=-1))
    plan = as_text(
        [Reply.tool("write_file", {"path": "answer.txt", "content": "42\n"}), Reply.tool("submit")]
    )
    with server(tmp_path, str(tmp_path / "tiny"), max_sessions=1) as (proc, url):
        resets = [{"seed": 1}, {"seed": 2}]
        episodes, runs, model = evaluate(url, resets, plan, tmp_path / "vf", proc.pid)
        assert [e["task"]["data"]["reset"] for e in episodes] == resets
        assert [reward_of(e) for e in episodes] == [0.5, 0.75]  # (seed % 4 + 1) / 4
        # the model saw the server's observation and our action schema, then acted
        first = json.loads(model.completions[0].body["messages"][-1]["content"])  # type: ignore[index]
        assert first["observation"]["task"] == "tiny" and first["observation"]["seed"] == 1
        assert first["action_schema"]["title"] == "ToolCallAction"
        assert len(model.completions) == 2 * len(plan)
        assert runs, "no episode ran on the server while the model was asked"
        wait_gone(proc.pid, runs)
        assert runs_of(proc.pid) == []
        assert_slot_free(url)


class _PatientClient(openenv.GenericEnvClient):  # type: ignore[misc,name-defined]
    """openenv's client with a 10-minute message timeout instead of its 60-s default,
    which verifiers 0.3.1's taskset keeps for a ``base_url``: submit answers only once
    graded, and kv-replicated's grading takes longer than a minute."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("message_timeout_s", 600)
        super().__init__(*args, **kwargs)


def test_openenv_taskset_records_kv_replicateds_reward_of_the_local_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The naive reference's tool calls, seed 1, through verifiers' taskset and
    `infragym serve`, and through the local Env: the same reward (naive's cap, 0.25)."""
    monkeypatch.setenv(KEY_VAR, "test-key")
    monkeypatch.setattr(openenv, "GenericEnvClient", _PatientClient)  # the taskset's import
    task = find_task("kv-replicated")
    plan = as_text(reference_script(task, "naive"))
    with server(tmp_path, "kv-replicated", max_sessions=1, timeout=600) as (proc, url):
        resets = [{"task": "kv-replicated", "seed": 1}]
        episodes, runs, model = evaluate(url, resets, plan, tmp_path / "vf", proc.pid)
        assert len(model.completions) == len(plan)  # every file written, then submit
        assert runs
        wait_gone(proc.pid, runs, within=120)
        assert_slot_free(url)
    remote = reward_of(episodes[0])
    local = asyncio.run(run_episode(Env(task), reference_agent(task, "naive"), seed=1))
    assert remote == pytest.approx(local.reward, abs=0.02), (remote, local.reward)
    assert remote == pytest.approx(0.25, abs=0.02)  # naive's cap, as in the README
