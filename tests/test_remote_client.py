"""RemoteEnv against a fake ``infragym serve`` speaking the session protocol over a real
WebSocket on loopback (no openenv, no root): the agents that play a local Env play a
remote one, and a server that answers what is not a protocol message (a foreign or broken
server) ends its episode as a platform failure without crashing the run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from infragym.agent import OpenAIAgent, noop_agent
from infragym.grading import GradeResult
from infragym.remote import RemoteEnv
from infragym.runner import rollout_many
from infragym.testing import Reply, ScriptedModelServer

OBSERVATION = {
    "task": "tiny",
    "instructions": "Write answer.txt on kv1, then submit.",
    "seed": 1,
    "tools": [{"type": "function", "function": {"name": "submit", "description": "end",
                                                 "parameters": {"type": "object"}}}],
    "dev_hosts": ["kv1"],
    "limits": {"max_steps": 5, "agent_wall_s": 60, "command_timeout_s": 5},
    "variant": {"host_prefix": "kv"},
}  # fmt: skip
GRADE = GradeResult(task="tiny", seed=1, reward=1.0).model_dump(mode="json")
Answer = Callable[[dict[str, Any]], str]


def message(data: Any, kind: str = "observation") -> str:
    return json.dumps({"type": kind, "data": data})


def honest(m: dict[str, Any]) -> str:
    if m["type"] == "reset":
        return message({"observation": OBSERVATION})
    meta = {"terminated": True, "grade": GRADE}
    return message({"observation": {"content": "graded"}, "reward": 1.0, "metadata": meta})


@asynccontextmanager
async def fake_server(answer: Answer) -> AsyncIterator[str]:
    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type is not WSMsgType.TEXT:
                break
            m = json.loads(msg.data)
            if m["type"] == "close":
                break
            await sock.send_str(answer(m))
        return sock

    app = web.Application()
    app.router.add_get("/ws", ws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_a_remote_env_tells_the_agent_what_a_local_one_does() -> None:
    """An OpenAI-compatible agent reads ``env.instructions``, a probe agent
    ``env.dev_hosts``: a remote episode has them after its reset, as the server sent."""

    async def main() -> tuple[RemoteEnv, OpenAIAgent, Any]:
        async with (
            fake_server(honest) as url,
            ScriptedModelServer([Reply.tool("submit")]) as model,
        ):
            agent = OpenAIAgent(model="test-model", base_url=model.url, api_key=model.api_key)
            env = RemoteEnv(url, "tiny")
            await env.reset(seed=1)
            final = await asyncio.wait_for(agent.play(env), 60)  # type: ignore[arg-type]
            return env, agent, final

    env, agent, final = asyncio.run(main())
    assert env.instructions == OBSERVATION["instructions"]
    assert env.dev_hosts == ("kv1",)
    assert agent.messages[1] == {"role": "user", "content": OBSERVATION["instructions"]}
    assert final.terminated and final.info["grade"].reward == 1.0


def _step_answer(data: Any) -> Answer:
    def answer(m: dict[str, Any]) -> str:
        return honest(m) if m["type"] == "reset" else message(data)

    return answer


MALFORMED: dict[str, Answer] = {
    "not JSON": lambda m: "<html>502 Bad Gateway</html>",
    "a JSON list": lambda m: "[1, 2]",
    "data not an object": lambda m: json.dumps({"type": "observation", "data": "x"}),
    "a reset with no observation fields": lambda m: message({"observation": {"seed": 1}}),
    "an end with no grade": _step_answer({"observation": {}, "metadata": {"terminated": True}}),
    "a grade that is not one": _step_answer(
        {"observation": {}, "metadata": {"terminated": True, "grade": {"reward": "lots"}}}
    ),
    "a reward that is not a number": _step_answer(
        {"observation": {}, "reward": "lots", "metadata": {"terminated": True, "grade": GRADE}}
    ),
    "a submit that never ends the episode": _step_answer({"observation": {"content": "ok"}}),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_server_answer_is_a_platform_failure_not_a_crash(case: str) -> None:
    async def main() -> list[Any]:
        async with fake_server(MALFORMED[case]) as url:
            return await asyncio.wait_for(rollout_many("tiny", noop_agent, [1, 2], server=url), 60)

    outcomes = asyncio.run(main())
    assert [o.reward for o in outcomes] == [None, None]
    assert all(o.error for o in outcomes), [o.error for o in outcomes]
    assert all(o.trajectory is not None and o.trajectory.error for o in outcomes)
