"""infragym through verifiers (v1), the environment interface of prime-rl: real verifiers
rollouts (its interception server, trace recording and scoring) against the scripted
model server, with infragym episodes underneath."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_no_namespaces_left, needs_root
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym import ConfigError
from infragym.sandbox import cleanup
from infragym.sandbox._sys import list_netns
from infragym.tasks import find_task
from infragym.testing import Reply, ScriptedModelServer, by_turn, reference_script

vf = pytest.importorskip("verifiers.v1", reason="needs infragym[verifiers]")

from infragym.integrations.verifiers import (  # noqa: E402
    InfraGymEnv,
    InfraGymHarness,
    InfraGymTask,
    InfraGymTaskset,
    make_env,
    run_group,
)

KEY_VAR = "INFRAGYM_TEST_MODEL_KEY"


@pytest.fixture(autouse=True)
def verifiers_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # verifiers' runtime scratch space


def alternating_answers() -> Any:
    """Conversation i (in the order they start) writes 42 if i is even, else 41; the
    index rides in its first reply, so later turns of the same conversation find it."""
    starts = itertools.count()

    def answer(body: dict[str, Any]) -> Reply:
        mine = [m for m in body["messages"] if m["role"] == "assistant"]
        if not mine:
            i = next(starts)
            value = "42" if i % 2 == 0 else "41"
            return Reply.tool("write_file", {"path": "answer.txt", "content": value + "\n"},
                              content=f"attempt {i}")
        return Reply.tool("submit")

    return answer


def written_answer(messages: list[Any]) -> str:
    for m in messages:
        for call in getattr(m, "tool_calls", None) or []:
            if call.name == "write_file":
                return str(json.loads(call.arguments)["content"]).strip()
    raise AssertionError("no write_file call in the conversation")


def test_the_plugin_id_resolves_to_infragyms_env_taskset_and_harness() -> None:
    from verifiers.v1.utils.loaders import environment_class, harness_class, taskset_class

    assert environment_class("infragym-verifiers") is InfraGymEnv
    assert taskset_class("infragym-verifiers") is InfraGymTaskset
    assert harness_class("infragym-verifiers") is InfraGymHarness


def test_the_taskset_has_one_task_per_task_and_seed_and_rejects_unknown_tasks(
        tmp_path: Path) -> None:
    env = make_env(tasks=["kv-replicated"], seeds=[3, 4])
    tasks = list(env.taskset)
    assert [(t.data.task, t.data.seed) for t in tasks] == [("kv-replicated", 3),
                                                          ("kv-replicated", 4)]
    assert all(isinstance(t, InfraGymTask) for t in tasks)
    # each seed's prompt is its variant's instructions (seed 3: 5 hosts, seed 4: port 9000)
    kv = find_task("kv-replicated")
    assert [t.data.prompt for t in tasks] == [kv.instructions_for(3), kv.instructions_for(4)]
    assert tasks[0].data.prompt != tasks[1].data.prompt
    assert len({t.key for t in tasks}) == 2  # verifiers groups rollouts by task key
    with pytest.raises(ConfigError, match=r"known tasks: .*kv-replicated"):
        list(make_env(tasks=["no-such-task"]).taskset)
    with pytest.raises(ConfigError, match="at least one task and one seed"):
        list(make_env(tasks=["kv-replicated"], seeds=[]).taskset)
    with pytest.raises(ConfigError, match=r"seeds are whole numbers >= 0, not \[-1\]"):
        list(make_env(tasks=["kv-replicated"], seeds=[2, -1]).taskset)


@needs_root
def test_a_group_of_k_episodes_gives_k_message_reward_pairs_in_verifiers_types(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task_dir = tiny_task(tmp_path, dev_hosts=0, grader=WORKSPACE_GRADER)
    env = make_env(tasks=[str(task_dir)], seeds=[7], artifacts_dir=str(tmp_path / "art"))
    task = next(iter(env.taskset))
    before = set(list_netns())

    async def main() -> tuple[list[Any], ScriptedModelServer]:
        async with ScriptedModelServer(then=alternating_answers()) as server:
            monkeypatch.setenv(KEY_VAR, server.api_key or "")
            episodes = await asyncio.wait_for(
                run_group(env, task, 4, model="test-model", base_url=server.url,
                          api_key_var=KEY_VAR, max_concurrency=4), 240)
            return episodes, server

    episodes, server = asyncio.run(main())
    assert len(episodes) == 4
    assert all(isinstance(e, vf.Episode) and e.ok for e in episodes), \
        [e.errors for e in episodes]
    pairs = [(e.traces[0].messages, e.traces[0].reward) for e in episodes]
    assert sorted(r for _, r in pairs) == [0.0, 0.0, 1.0, 1.0]
    for messages, reward in pairs:
        # the reward belongs to this conversation: 1 exactly when it wrote 42
        assert reward == (1.0 if written_answer(messages) == "42" else 0.0)
        assert [m.role for m in messages] == ["system", "user", "assistant", "tool",
                                              "assistant"]
        assert isinstance(messages[2], vf.AssistantMessage)
        assert messages[1].content == task_dir.joinpath("instructions.md").read_text()
        assert messages[3].content.startswith("wrote 3 bytes")  # the tool result it saw
        assert messages[4].tool_calls[0].name == "submit"
    for e in episodes:
        t = e.traces[0]
        assert t.metrics["infragym/answer"] == t.reward and t.metrics["infragym/steps"] == 2
        assert t.task.data.seed == 7
    # every model call went through verifiers' interception to the server: 2 per episode
    assert len(server.completions) == 8
    assert_no_namespaces_left(before)
    assert not cleanup().removed_anything


@needs_root
def test_a_platform_failure_fails_the_rollout_instead_of_scoring_0(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grader = "async def grade(ctx):\n    raise RuntimeError('grader bug')\n"
    task_dir = tiny_task(tmp_path, dev_hosts=0, grader=grader)
    env = make_env(tasks=[str(task_dir)], seeds=[1], artifacts_dir=str(tmp_path / "art"))

    async def main() -> list[Any]:
        async with ScriptedModelServer(then=by_turn([])) as server:
            monkeypatch.setenv(KEY_VAR, server.api_key or "")
            return await asyncio.wait_for(
                run_group(env, next(iter(env.taskset)), 1, model="test-model",
                          base_url=server.url, api_key_var=KEY_VAR), 280)  # may wait for room

    (episode,) = asyncio.run(main())
    assert not episode.ok  # a trainer drops it; no reward is made up
    errors = [episode.last_error, *(t.last_error for t in episode.traces)]
    assert any(e is not None and "grader bug" in e.message for e in errors), errors
    assert all(t.rewards.get("infragym") is None for t in episode.traces)


@needs_root
def test_the_runs_turn_limit_ends_the_episode_and_it_is_graded_as_it_stands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verifiers refuses the turn past ``max_turns`` (a 400 "rollout stopped"): that is the
    run's own limit, so the episode is graded as it stands, not dropped as a failure."""
    from infragym.integrations.verifiers import InfraGymEnvConfig, InfraGymHarnessConfig
    from infragym.integrations.verifiers import InfraGymTasksetConfig as TasksetConfig

    task_dir = tiny_task(tmp_path, dev_hosts=0, grader=WORKSPACE_GRADER)
    write = Reply.tool("write_file", {"path": "answer.txt", "content": "42\n"})
    rounds = [write, Reply.tool("bash", {"command": "cat answer.txt"})]
    results = {}
    for turns in (1, 2):
        config = InfraGymEnvConfig(
            taskset=TasksetConfig(tasks=[str(task_dir)], seeds=[1]),
            agent=vf.AgentConfig(runtime=vf.SubprocessConfig(), max_turns=turns,
                                 harness=InfraGymHarnessConfig(artifacts_dir=str(tmp_path))))
        env = vf.load_environment(config)

        async def main(env: Any = env) -> list[Any]:
            async with ScriptedModelServer(then=by_turn(rounds)) as server:
                monkeypatch.setenv(KEY_VAR, server.api_key or "")
                return await asyncio.wait_for(
                    run_group(env, next(iter(env.taskset)), 1, model="test-model",
                              base_url=server.url, api_key_var=KEY_VAR), 280)  # may wait for room

        (episode,) = asyncio.run(main())
        assert episode.ok, episode.errors
        results[turns] = episode.traces[0]
    # one turn wrote the answer; the refused second turn ended the episode, graded: 1.0
    assert results[1].reward == 1.0 and results[1].stop_condition == "max_turns"
    assert results[1].metrics["infragym/steps"] == 2  # write_file, then the submit
    assert results[2].reward == 1.0 and results[2].num_turns == 2


@needs_root
def test_the_scripted_model_earns_the_reference_reward_on_kv_replicated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(tasks=["kv-replicated"], seeds=[1], artifacts_dir=str(tmp_path / "art"))
    script = reference_script(find_task("kv-replicated"), "robust")

    async def main() -> list[Any]:
        async with ScriptedModelServer(then=by_turn(script)) as server:
            monkeypatch.setenv(KEY_VAR, server.api_key or "")
            return await asyncio.wait_for(
                run_group(env, next(iter(env.taskset)), 2, model="test-model",
                          base_url=server.url, api_key_var=KEY_VAR), 280)

    episodes = asyncio.run(main())
    # reference:robust earns 1.0 on seed 1 (tests/test_task_kv_replicated.py)
    assert [e.ok for e in episodes] == [True, True], [e.errors for e in episodes]
    assert [abs(e.traces[0].reward - 1.0) <= 0.05 for e in episodes] == [True, True]
    assert episodes[0].traces[0].metrics["infragym/functional"] == 1.0


@needs_root
def test_vf_eval_runs_an_infragym_group_and_writes_verifiers_episodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer's own command line, as a user runs it: ``vf-eval infragym-verifiers``."""
    task_dir = tiny_task(tmp_path, dev_hosts=0, grader=WORKSPACE_GRADER)
    out = tmp_path / "out"
    vf_eval = Path(sys.executable).with_name("vf-eval")

    async def main() -> tuple[int, str]:
        async with ScriptedModelServer(then=alternating_answers()) as server:
            env = {**os.environ, KEY_VAR: server.api_key or "", "HOME": str(tmp_path / "home")}
            proc = await asyncio.create_subprocess_exec(
                str(vf_eval), "infragym-verifiers", "-m", "test-model", "-r", "4", "-c", "2",
                "--no-push", "-o", str(out), "--env.taskset.tasks", str(task_dir),
                "--env.taskset.seeds", "5", "--client.base-url", server.url,
                "--client.api-key-var", KEY_VAR,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
            text, _ = await asyncio.wait_for(proc.communicate(), 240)
            return proc.returncode or 0, text.decode(errors="replace")

    code, text = asyncio.run(main())
    assert code == 0, text[-3000:]
    (traces,) = out.glob("*/traces.jsonl")
    episodes = [vf.WireEpisode.model_validate_json(line)
                for line in traces.read_text().splitlines()]
    assert len(episodes) == 4 and all(e.ok for e in episodes)
    rewards = sorted(e.traces[0].reward for e in episodes)
    assert rewards == [0.0, 0.0, 1.0, 1.0]
    for e in episodes:
        t = e.traces[0]
        assert t.reward == (1.0 if written_answer(t.messages) == "42" else 0.0)
        assert t.task.data.model_extra == {"task": str(task_dir), "seed": 5}
    assert "reward 0.50" in text  # vf-eval's own summary line
