"""OpenAIAgent against a scripted OpenAI-compatible server over real HTTP on loopback.

The solving test grades kv-replicated for real; the bad cases play a tiny task made under
tmp_path (no dev hosts, its grader checks ``answer.txt``) so each runs in seconds.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import needs_root
from tinytask import tiny_task

from infragym import ConfigError, InfraGymError
from infragym.agent import OpenAIAgent, run_episode
from infragym.agent._openai import ModelError, fit_to_budget, message_chars
from infragym.env import Env, StepResult, make
from infragym.tasks import find_task
from infragym.testing import Fail, Reply, ScriptedModelServer, ScriptEntry, reference_script

T = TypeVar("T")

WRITE_ANSWER = Reply.tool("write_file", {"path": "answer.txt", "content": "42\n"})
SUBMIT = Reply.tool("submit")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return tiny_task(tmp_path, name="tiny-model", dev_hosts=0, max_steps=30,
                     command_timeout=20)


def agent_for(server: ScriptedModelServer, **kw: Any) -> OpenAIAgent:
    kw.setdefault("model", "test-model")
    kw.setdefault("api_key", server.api_key)
    kw.setdefault("max_retries", 3)
    return OpenAIAgent(base_url=server.url, **kw)


async def play(
    task: str, script: Sequence[ScriptEntry], tmp_path: Path, **kw: Any
) -> tuple[StepResult, OpenAIAgent, ScriptedModelServer]:
    async with ScriptedModelServer(script) as server:
        agent = agent_for(server, **kw)
        env = make(task, artifacts_dir=tmp_path / "artifacts")
        final = await asyncio.wait_for(run_episode(env, agent, seed=1), 240)
        return final, agent, server


def tool_results(agent: OpenAIAgent) -> list[str]:
    return [m["content"] for m in agent.messages if m["role"] == "tool"]


# -- the solving model -------------------------------------------------------------------


@needs_root
@pytest.mark.timeout(300)
def test_scripted_model_solves_kv_replicated(tmp_path: Path) -> None:
    script = reference_script(find_task("kv-replicated"), "robust")
    final, agent, server = run(play("kv-replicated", script, tmp_path))
    assert final.terminated and agent.end_reason == "submit"
    assert final.info["grade"].error is None
    assert final.reward >= 0.85, final.info["grade"].breakdown
    assert server.remaining == 0 and [r.status for r in server.requests] == [200] * len(script)
    assert len(agent.usage) == len(script)
    assert all(u.prompt_tokens and u.total_tokens for u in agent.usage)
    results = tool_results(agent)
    assert len(results) == len(script)  # every call answered, the final submit's too
    calls = [m for m in agent.messages if m["role"] == "assistant"]
    assert [c["tool_calls"][0]["function"]["name"] for c in calls][-1] == "submit"


# -- what the model gets wrong -----------------------------------------------------------


@needs_root
@pytest.mark.timeout(120)
def test_invalid_json_arguments_are_a_tool_error(tiny: Path, tmp_path: Path) -> None:
    bad = Reply.tool("write_file", '{"path": "answer.txt", "content": ')
    final, agent, _ = run(play(str(tiny), [bad, WRITE_ANSWER, SUBMIT], tmp_path))
    assert "not valid JSON" in tool_results(agent)[0]
    assert final.terminated and final.reward == 1.0  # it carried on and solved it


@needs_root
@pytest.mark.timeout(120)
def test_unknown_tool_is_a_tool_error(tiny: Path, tmp_path: Path) -> None:
    bad = Reply.tool("launch_rockets", {"count": 3})
    final, agent, _ = run(play(str(tiny), [bad, WRITE_ANSWER, SUBMIT], tmp_path))
    first = tool_results(agent)[0]
    assert first.startswith("error:") and "launch_rockets" in first
    assert final.terminated and final.reward == 1.0


@needs_root
@pytest.mark.timeout(120)
@pytest.mark.parametrize("reply", [Reply(), Reply.text("I would write the file now.")])
def test_a_reply_without_a_tool_call_gets_a_reminder(
    reply: Reply, tiny: Path, tmp_path: Path
) -> None:
    final, agent, server = run(play(str(tiny), [reply, WRITE_ANSWER, SUBMIT], tmp_path))
    reminders = [m for m in agent.messages[2:] if m["role"] == "user"]
    assert len(reminders) == 1 and "called no tool" in reminders[0]["content"]
    assert agent.no_tool_turns == 1
    assert final.terminated and final.reward == 1.0 and agent.end_reason == "submit"
    # the reminder went to the model with the next request
    assert "called no tool" in server.completions[1].body["messages"][-1]["content"]  # type: ignore[index]


@needs_root
@pytest.mark.timeout(120)
def test_replies_without_tool_calls_end_the_episode(tiny: Path, tmp_path: Path) -> None:
    script = [WRITE_ANSWER, Reply.text("Done, I think."), Reply(), Reply.text("Really done.")]
    final, agent, server = run(play(str(tiny), script, tmp_path, max_no_tool_turns=3))
    assert agent.end_reason == "no_tool_call" and agent.no_tool_turns == 3
    assert final.terminated and final.info["end_reason"] == "submit"
    assert final.reward == 1.0  # graded as it stands: the answer had been written
    assert len(server.completions) == 4 and server.remaining == 0


@needs_root
@pytest.mark.timeout(120)
def test_huge_tool_output_is_truncated_and_the_context_stays_in_budget(
    tiny: Path, tmp_path: Path
) -> None:
    five_mb = Reply.tool("bash", {"command": "head -c 5000000 /dev/zero | tr '\\0' x"})
    budget = 30_000
    final, agent, server = run(
        play(
            str(tiny),
            [five_mb, five_mb, five_mb, WRITE_ANSWER, SUBMIT],
            tmp_path,
            context_chars=budget,
            keep_tool_results=1,
        )
    )
    outputs = tool_results(agent)[:3]
    assert all(20_000 > len(o) > 1000 and "x" * 1000 in o for o in outputs)
    assert final.terminated and final.reward == 1.0
    assert all(r.message_chars <= budget for r in server.completions)
    assert all(u.sent_chars <= budget for u in agent.usage)
    assert any("elided" in str(m.get("content")) for m in server.completions[-1].body["messages"])  # type: ignore[index]


# -- what the server gets wrong ----------------------------------------------------------


@needs_root
@pytest.mark.timeout(120)
@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried(status: int, tiny: Path, tmp_path: Path) -> None:
    script: list[ScriptEntry] = [Fail(status, times=2), WRITE_ANSWER, Fail(status), SUBMIT]
    final, agent, server = run(play(str(tiny), script, tmp_path, max_retries=3))
    assert [r.status for r in server.completions] == [status, status, 200, status, 200]
    assert final.terminated and final.reward == 1.0 and agent.end_reason == "submit"
    assert len(agent.usage) == 2


OVERFLOW = ("This model's maximum context length is 2048 tokens. However, you requested "
            "2300 tokens (2200 in the messages, 100 in the completion).")


@needs_root
@pytest.mark.timeout(120)
def test_a_context_overflow_is_retried_with_a_smaller_budget(tiny: Path, tmp_path: Path) -> None:
    big = Reply.tool("bash", {"command": "head -c 6000 /dev/zero | tr '\\0' x"})
    script: list[ScriptEntry] = [big, Fail(400, message=OVERFLOW), WRITE_ANSWER, SUBMIT]
    final, agent, server = run(play(str(tiny), script, tmp_path, keep_tool_results=0))
    assert [r.status for r in server.completions] == [200, 400, 200, 200]
    refused, retried, after = server.completions[1:]
    assert retried.message_chars <= refused.message_chars // 2 < refused.message_chars
    assert after.message_chars <= agent.budget_chars < agent.context_chars  # the cut stays
    assert final.reward == 1.0 and agent.end_reason == "submit"
    assert len(agent.messages[3]["content"]) > 6000  # the transcript itself is whole


@needs_root
@pytest.mark.timeout(120)
def test_an_overflow_that_cutting_no_longer_shrinks_ends_instead_of_looping(
        tmp_path: Path) -> None:
    """60 short rounds leave nothing long to elide: the cut request is as big as the
    refused one, so sending it again would loop forever."""
    tiny = tiny_task(tmp_path, name="long", dev_hosts=0, max_steps=100)
    rounds: list[ScriptEntry] = [Reply.tool("bash", {"command": "echo hi"})] * 60
    async def main() -> tuple[InfraGymError, ScriptedModelServer]:
        async with ScriptedModelServer([*rounds, Fail(400, times=10**6, message=OVERFLOW)]
                                       ) as server:
            env = make(str(tiny), artifacts_dir=tmp_path / "artifacts")
            with pytest.raises(InfraGymError) as info:
                await asyncio.wait_for(run_episode(env, agent_for(server), seed=1), 100)
            return info.value, server

    err, server = run(main())
    assert isinstance(err, ModelError) and err.reason == "context_length"
    assert 1 <= sum(r.status == 400 for r in server.completions) <= 3


@pytest.mark.timeout(60)
def test_a_context_overflow_that_cutting_cannot_fix_is_a_clear_error(
        tiny: Path, tmp_path: Path) -> None:
    err, _, server = run(fail_fast(tiny, tmp_path, [Fail(400, times=50, message=OVERFLOW)]))
    assert isinstance(err, ModelError) and err.reason == "context_length"
    assert "context_chars" in str(err)
    assert 1 <= len(server.completions) <= 3  # the instructions alone cannot be cut


@pytest.mark.timeout(60)
def test_any_other_bad_request_is_not_retried(tiny: Path, tmp_path: Path) -> None:
    err, _, server = run(fail_fast(tiny, tmp_path, [Fail(400, message="bad 'tools' field")]))
    assert isinstance(err, ModelError) and err.reason == "bad_request"
    assert len(server.completions) == 1


def idle_env(tiny: Path, tmp_path: Path) -> Env:
    """An env of the tiny task, never reset: the agent fails before its first step."""
    return make(str(tiny), artifacts_dir=tmp_path / "artifacts")


async def fail_fast(
    tiny: Path, tmp_path: Path, script: Sequence[ScriptEntry], **kw: Any
) -> tuple[InfraGymError, OpenAIAgent, ScriptedModelServer]:
    async with ScriptedModelServer(script) as server:
        agent = agent_for(server, **kw)
        with pytest.raises(InfraGymError) as info:
            await asyncio.wait_for(agent.play(idle_env(tiny, tmp_path)), 60)
        return info.value, agent, server


@pytest.mark.timeout(60)
def test_rate_limited_for_good_ends_cleanly(tiny: Path, tmp_path: Path) -> None:
    err, agent, server = run(fail_fast(tiny, tmp_path, [Fail(429, times=100)], max_retries=2))
    assert isinstance(err, ModelError) and err.reason == "rate_limited"
    assert "429" in str(err) and "max_retries" in str(err)
    assert agent.end_reason == "model_error:rate_limited"
    assert [r.status for r in server.completions] == [429] * 3


@pytest.mark.timeout(60)
def test_server_error_for_good_ends_cleanly(tiny: Path, tmp_path: Path) -> None:
    err, _, server = run(fail_fast(tiny, tmp_path, [Fail(500, times=100)], max_retries=1))
    assert isinstance(err, ModelError) and err.reason == "server_error"
    assert [r.status for r in server.completions] == [500] * 2


@pytest.mark.timeout(60)
def test_bad_key_is_a_clear_config_error(tiny: Path, tmp_path: Path) -> None:
    err, agent, server = run(fail_fast(tiny, tmp_path, [SUBMIT], api_key="sk-wrong"))
    assert isinstance(err, ConfigError)
    assert "rejected the API key (401)" in str(err) and "OPENAI_API_KEY" in str(err)
    assert agent.end_reason == "model_error:auth"
    assert [r.status for r in server.requests] == [401]  # not retried


@pytest.mark.timeout(60)
def test_unknown_model_is_a_clear_config_error(tiny: Path, tmp_path: Path) -> None:
    err, agent, server = run(fail_fast(tiny, tmp_path, [SUBMIT], model="gpt-17"))
    assert isinstance(err, ConfigError)
    assert "'gpt-17'" in str(err) and "INFRAGYM_MODEL" in str(err)
    assert agent.end_reason == "model_error:model_not_found"
    assert [r.status for r in server.requests] == [404]


@pytest.mark.timeout(60)
def test_unreachable_server_is_a_clear_error(tiny: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    agent = OpenAIAgent(
        model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0
    )
    with pytest.raises(ModelError, match="cannot reach") as info:
        run(asyncio.wait_for(agent.play(idle_env(tiny, tmp_path)), 60))
    assert info.value.reason == "connection"


# -- configuration and the context budget ------------------------------------------------


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRAGYM_MODEL", "qwen")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent = OpenAIAgent()
    assert (agent.model, agent.base_url, agent.api_key) == (
        "qwen",
        "http://127.0.0.1:9/v1",
        "EMPTY",
    )
    assert agent.name == "openai:qwen"
    assert OpenAIAgent(model="other", api_key="k").model == "other"
    monkeypatch.delenv("INFRAGYM_MODEL")
    with pytest.raises(ConfigError, match="INFRAGYM_MODEL"):
        OpenAIAgent()
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIAgent(model="m")
    with pytest.raises(ConfigError, match="context_chars"):
        OpenAIAgent(model="m", api_key="k", context_chars=10)


@pytest.mark.timeout(60)
def test_sampling_parameters_reach_the_server(tiny: Path, tmp_path: Path) -> None:
    async def go() -> dict[str, Any]:
        async with ScriptedModelServer([Fail(401, times=1)]) as server:
            agent = agent_for(
                server, temperature=0.3, top_p=0.9, max_tokens=512, seed=5,
                extra_body={"top_k": 20},
            )  # fmt: skip
            with pytest.raises(ConfigError):
                await agent.play(idle_env(tiny, tmp_path))
            body = server.completions[0].body
            assert body is not None
            return body

    body = run(go())
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["seed"] == 5
    assert body["max_tokens"] == 512 and body["top_k"] == 20
    assert {t["function"]["name"] for t in body["tools"]} >= {"bash", "write_file", "submit"}
    assert body["messages"][1]["content"].startswith("Write 42")


def conversation(turns: int, size: int) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "S" * 500},
        {"role": "user", "content": "I" * 2000},
    ]
    for i in range(turns):
        args = '{"content": "' + "a" * size + '"}'
        call = {"id": f"c{i}", "type": "function",
                "function": {"name": "write_file", "arguments": args}}  # fmt: skip
        msgs.append({"role": "assistant", "content": "thinking " * 20, "tool_calls": [call]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": str(i) * size})
    return msgs


@pytest.mark.parametrize("budget", [8_000, 20_000, 60_000, 150_000, 10**7])
@pytest.mark.parametrize("keep", [0, 1, 3])
def test_context_budget(budget: int, keep: int) -> None:
    msgs = conversation(turns=12, size=5_000)
    before = [dict(m) for m in msgs]
    sent = fit_to_budget(msgs, budget, keep)
    assert msgs == before  # the transcript itself is never changed
    assert sum(message_chars(m) for m in sent) <= budget
    assert sent[:2] == msgs[:2] and len(sent) == len(msgs)
    assert [m["role"] for m in sent] == [m["role"] for m in msgs]
    tools = [i for i, m in enumerate(msgs) if m["role"] == "tool"]
    if budget >= 60_000 and keep:
        for i in tools[-keep:]:
            assert sent[i] == msgs[i]  # the last tool results stay whole
    if budget >= 10**7:
        assert sent == msgs
