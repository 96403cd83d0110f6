"""OpenAIAgent past its context budget: compaction over hundreds of turns, against the
scripted model server over real HTTP, on a tiny task graded from its workspace.

The scripted model reads a clue in its first turn (``echo ANSWER=42``) and, hundreds of
turns later, writes the answer it can still see in what it is sent (else ``unknown``).
Long before then the first turn has left every request: only a summary can carry it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_root
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym import ConfigError
from infragym.agent import OpenAIAgent, agent_from_spec, run_episode
from infragym.agent._context import (
    COMPACTION_NAME,
    after_summary,
    drop_middle_turns,
    message_chars,
    summary_message,
    total_chars,
)
from infragym.env import StepResult, make
from infragym.report._transcript import transcript_html
from infragym.runner import build_trajectory
from infragym.tasks import find_task
from infragym.testing import Fail, Reply, ScriptedModelServer, with_summaries

CLUE = "ANSWER=42"
BUDGET = 10_000
LOG = "printf 'line %s of the service log\\n' $(seq 1 12)"  # ~300 characters of output


def sent_text(body: dict[str, Any]) -> str:
    return json.dumps(body.get("messages") or [])


class LongModel:
    """``turns`` turns of cheap commands after the clue, then the answer it can see, then
    submit. Summaries say what the request showed; ``bad`` answers the first summary
    requests (one per HTTP request)."""

    def __init__(self, turns: int, bad: list[Reply | Fail] | None = None) -> None:
        self.turns = turns
        self.n = 0
        self.bad = list(bad or [])
        self.summaries: list[str] = []

    def turn(self, body: dict[str, Any]) -> Reply:
        i, self.n = self.n, self.n + 1
        if i == 0:
            return Reply.tool("bash", {"command": f"echo {CLUE}"}, content="Where is the answer?")
        if i < self.turns:
            note = (
                f"Turn {i}: the log has not changed since the last look; I check it again "
                "before I touch anything."
            )
            return Reply.tool("bash", {"command": LOG}, content=note)
        if i == self.turns:
            value = "42" if CLUE in sent_text(body) else "unknown"
            return Reply.tool("write_file", {"path": "answer.txt", "content": value + "\n"})
        return Reply.tool("submit")

    def summary(self, body: dict[str, Any]) -> Reply | Fail:
        if self.bad:
            return self.bad.pop(0)
        fact = f"the answer is {CLUE}" if CLUE in sent_text(body) else "no answer found yet"
        text = (
            f"1. Task: write the answer to answer.txt. 2. Done: {self.n} turns watching the "
            f"log. 3. State: {fact}. 4. Open problems: none. 5. Next steps: write it. "
            f"(summary {len(self.summaries) + 1})"
        )
        self.summaries.append(text)
        return Reply.text(text)


async def play_long(
    tmp_path: Path, model: LongModel, **kw: Any
) -> tuple[StepResult, OpenAIAgent, ScriptedModelServer]:
    task = tiny_task(tmp_path, name="tiny-long", dev_hosts=0, max_steps=model.turns + 20,
                     grader=WORKSPACE_GRADER)  # fmt: skip
    async with ScriptedModelServer(then=with_summaries(model.turn, model.summary)) as server:
        kw.setdefault("max_retries", 1)
        agent = OpenAIAgent(
            model="test-model", base_url=server.url, api_key=server.api_key,
            context_chars=BUDGET, keep_tool_results=2, compaction=True, summary_chars=2_000,
            **kw,
        )  # fmt: skip
        env = make(str(task), artifacts_dir=tmp_path / "artifacts")
        final = await asyncio.wait_for(run_episode(env, agent, seed=1), 120)
        return final, agent, server


def assert_within_budget(agent: OpenAIAgent, server: ScriptedModelServer) -> None:
    """Every request, summaries included, within the budget in characters and in the
    server's token estimate (4 characters a token), by the server's count and the agent's."""
    assert all(r.message_chars <= BUDGET for r in server.completions)
    assert all(u.sent_chars <= BUDGET for u in agent.usage)
    assert all(u.prompt_tokens is not None and u.prompt_tokens <= BUDGET // 4 + 1
               for u in agent.usage)  # fmt: skip


@needs_root
@pytest.mark.timeout(180)
def test_hundreds_of_turns_stay_in_budget_and_the_summary_carries_the_clue(
    tmp_path: Path,
) -> None:
    model = LongModel(turns=300)
    final, agent, server = asyncio.run(play_long(tmp_path, model))
    assert final.terminated and agent.end_reason == "submit"
    assert final.reward == 1.0  # the answer written 300 turns after the clue was seen
    assert agent.turns == 302 and len(agent.compactions) >= 5
    assert all(c.ok and c.reason is None for c in agent.compactions)
    assert_within_budget(agent, server)

    turns = [r for r in server.completions if not r.is_summary]
    summaries = [r for r in server.completions if r.is_summary]
    assert len(summaries) == len(agent.compactions) == len(model.summaries)
    assert all(r.status == 200 for r in server.completions)
    # the turn-0 clue left the conversation at the first compaction: the last request
    # shows it only inside the latest summary, which opens the conversation after the
    # instructions
    last = turns[-2].body["messages"]  # type: ignore[index]  # the write_file turn
    assert "echo ANSWER=42" not in json.dumps(last)
    assert model.summaries[-1] in last[2]["content"] and CLUE in model.summaries[-1]
    # each summary reached the model: the first turn after each compaction opens with it
    for k, summary in enumerate(model.summaries):
        i = server.completions.index(summaries[k])
        after = server.completions[i + 1]
        assert not after.is_summary
        msgs = after.body["messages"]  # type: ignore[index]
        assert msgs[0]["role"] == "system" and msgs[1]["content"].startswith("Write 42")
        assert msgs[2]["content"].endswith(summary) and f"compaction {k + 1}," in msgs[2]["content"]
        assert after.message_chars <= BUDGET // 2  # room to grow before the next one
        # the recent turns follow whole: every tool result answers a call sent with it
        ids = {c["id"] for m in msgs for c in m.get("tool_calls") or []}
        assert all(m["tool_call_id"] in ids for m in msgs if m["role"] == "tool")
        assert sum(m["role"] == "assistant" for m in msgs) <= agent.compact_keep_turns
        # the request asking for it showed the whole conversation, no assistant text cut
        asked = summaries[k].body
        assert asked["tool_choice"] == "none" and asked["tools"]  # type: ignore[index]
        assert asked["messages"][-1]["content"].startswith("[infragym: context compaction]")  # type: ignore[index]
        assert "assistant message of" not in sent_text(asked)  # type: ignore[arg-type]

    # the transcript is whole, with each summary request and answer where it happened
    assert sum(m["role"] == "tool" for m in agent.messages) == 302
    named = [m for m in agent.messages if m.get("name") == COMPACTION_NAME]
    assert [m["role"] for m in named] == ["user", "assistant"] * len(model.summaries)
    assert [m["content"] for m in named[1::2]] == model.summaries
    for c in agent.compactions:
        assert agent.messages[c.at_message]["name"] == COMPACTION_NAME
    # counted: the summaries' tokens are in the usage, marked as such
    kinds = [u.kind for u in agent.usage]
    assert kinds.count("summary") == len(model.summaries) and kinds.count("turn") == 302
    # and recorded in the trajectory and its HTML transcript
    traj = build_trajectory("tiny-long", 1, agent, None, final, None, 1.0)
    assert len(traj.compactions) == len(agent.compactions) and traj.compactions[0]["ok"]
    assert sum(u["kind"] == "summary" for u in traj.usage) == len(model.summaries)
    html = str(transcript_html(traj))
    assert html.count("compaction: summary request") == len(model.summaries)
    assert f"{len(model.summaries)} of {len(model.summaries)} compaction(s) done" in html


FAILURES = {
    "http-500": ([Fail(500), Fail(500)], "HTTP 500"),  # and the SDK's one retry
    "timeout": ([Reply("late", delay_s=2.0)] * 2, "timed out"),
    "empty": ([Reply.text("")], "empty answer"),
    "oversized": ([Reply.text("x" * 30_000)], "oversized answer: 30000 characters"),
}


@needs_root
@pytest.mark.timeout(300)  # a submit may wait for room on a busy machine
@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_summary_elides_harder_and_is_retried(failure: str, tmp_path: Path) -> None:
    bad, reason = FAILURES[failure]
    model = LongModel(turns=90, bad=list(bad))
    final, agent, server = asyncio.run(play_long(tmp_path, model, summary_timeout_s=0.3))
    assert final.terminated and agent.end_reason == "submit" and final.reward == 1.0
    first, second, *_ = agent.compactions
    assert not first.ok and reason in str(first.reason)
    assert first.summary_chars == 0 and first.retry_at_turn == first.turn + 4
    assert second.ok and second.turn == first.retry_at_turn and second.n == 2
    assert_within_budget(agent, server)
    # meanwhile the conversation went on uncompacted (elided as the budget needs), and
    # nothing of the failure reached the transcript
    turns = [r for r in server.completions if not r.is_summary]  # in order (not summaries)
    between = turns[first.turn : second.turn]
    assert len(between) == 4
    assert all("echo ANSWER=42" in sent_text(r.body or {}) for r in between)
    named = [m for m in agent.messages if m.get("name") == COMPACTION_NAME]
    assert len(named) == 2 * sum(c.ok for c in agent.compactions)
    html = str(transcript_html(build_trajectory("tiny-long", 1, agent, None, final, None, 1.0)))
    assert "compaction 1 at turn" in html and "failed" in html


@needs_root
@pytest.mark.timeout(300)  # a submit may wait for room on a busy machine
def test_summaries_failing_for_good_stop_being_asked_and_the_episode_goes_on(
    tmp_path: Path,
) -> None:
    model = LongModel(turns=160, bad=[Fail(500)] * 100)
    final, agent, server = asyncio.run(
        play_long(tmp_path, model, max_retries=0, compact_max_failures=2)
    )
    assert final.terminated and agent.end_reason == "submit"
    assert [c.ok for c in agent.compactions] == [False, False]
    assert agent.compactions[1].retry_at_turn is None  # no more attempts
    assert sum(r.is_summary for r in server.completions) == 2
    assert_within_budget(agent, server)  # middle turns left out instead
    sent = [sent_text(r.body or {}) for r in server.completions]
    harder = [i for i, t in enumerate(sent) if "assistant message of" in t]
    dropped = [i for i, t in enumerate(sent) if "left out to fit the context budget" in t]
    assert harder and dropped and harder[0] < dropped[0]  # old assistant text went first
    last = sent[-1]
    msgs = (server.completions[-1].body or {})["messages"]
    assert 10 < sum(m["role"] == "assistant" for m in msgs) < 100
    assert msgs[-1]["content"] == "wrote 3 bytes to /workspace/answer.txt"
    assert "tool output tail" not in last  # the latest results stay whole
    # the earliest turns stay: the clue is still in sight, and the answer right
    assert "echo ANSWER=42" in last and final.reward == 1.0


# -- the pieces, without an episode ------------------------------------------------------


def conversation(turns: int) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "S" * 300},
        {"role": "user", "content": "I" * 300},
    ]
    for i in range(turns):
        call = {"id": f"c{i}", "type": "function",
                "function": {"name": "bash", "arguments": '{"command": "ls"}'}}  # fmt: skip
        msgs.append({"role": "assistant", "content": f"turn {i} " * 10, "tool_calls": [call]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": str(i) * 200})
        if i % 7 == 3:
            msgs.append({"role": "user", "content": "a reminder"})
    return msgs


def paired(msgs: list[dict[str, Any]]) -> bool:
    ids = {c["id"] for m in msgs for c in m.get("tool_calls") or []}
    return all(m["tool_call_id"] in ids for m in msgs if m["role"] == "tool")


@pytest.mark.parametrize("budget", [1_500, 4_000, 9_000, 10**6])
def test_dropping_turns_keeps_the_head_the_earliest_and_latest_whole_turns(
    budget: int,
) -> None:
    msgs = conversation(30)
    out = drop_middle_turns(msgs, budget)
    assert out[:2] == msgs[:2] and paired(out) and out[-1] == msgs[-1]
    if budget >= 10**6:
        assert out == msgs
        return
    assert sum(message_chars(m) for m in out) <= budget
    notes = [i for i, m in enumerate(out) if "left out" in str(m["content"])]
    assert len(notes) == 1
    early, late = out[2 : notes[0]], out[notes[0] + 1 :]
    assert early == msgs[2 : 2 + len(early)]  # the first turns, unchanged
    assert late == msgs[len(msgs) - len(late) :]  # the latest, unchanged
    assert late[0]["role"] == "assistant"  # a turn's start, never an orphan result
    assert not early or early[0]["role"] == "assistant"
    if budget >= 4_000:
        assert early and total_chars(late) > total_chars(early)  # the latest get more
    left_out = len(msgs) - len(early) - len(late) - 2
    assert f"[{left_out} messages" in out[notes[0]]["content"]


@pytest.mark.parametrize("keep", [0, 1, 3, 50])
def test_after_a_summary_come_the_latest_whole_turns_that_fit(keep: int) -> None:
    msgs = conversation(30)
    summary = summary_message("what happened", 1, 30)
    out = after_summary(msgs, summary, keep, 10_000)
    assert out[:3] == [*msgs[:2], summary] and paired(out)
    turns = out[3:]
    assert sum(m["role"] == "assistant" for m in turns) <= keep
    assert turns == msgs[len(msgs) - len(turns) :]
    assert sum(message_chars(m) for m in out) <= 5_000
    if keep:
        assert turns and turns[0]["role"] == "assistant"


def test_compaction_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="summary_chars"):
        OpenAIAgent(model="m", api_key="k", summary_chars=100)
    # a limit above half the budget is cut to it when used: not an error, on or off
    assert OpenAIAgent(model="m", api_key="k", context_chars=4_000).summary_chars == 8_000
    with pytest.raises(ConfigError, match="compact_max_failures"):
        OpenAIAgent(model="m", api_key="k", compact_max_failures=0)
    with pytest.raises(ConfigError, match="compact_keep_turns"):
        OpenAIAgent(model="m", api_key="k", compact_keep_turns=-1)
    assert OpenAIAgent(model="m", api_key="k").compaction is False  # off unless asked
    # another configuration, another agent: a run store will not mix their episodes
    task = find_task("kv-replicated")
    on = agent_from_spec(task, "openai:m", "http://127.0.0.1:9/v1", compaction=True)
    assert isinstance(on, OpenAIAgent) and on.compaction and on.name == "openai:m+compaction"
    with pytest.raises(ConfigError, match="compaction is for openai"):
        agent_from_spec(task, "reference:robust", compaction=True)


def test_the_command_line_takes_compaction_for_model_agents_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from infragym.cli.main import main

    assert main(["run", "kv-replicated", "--agent", "noop", "--compaction"]) == 2
    assert "compaction is for openai:MODEL agents, not 'noop'" in capsys.readouterr().err
