"""The agent's tools over MCP, against OpenEnv's own MCP client
(``openenv.core.mcp_client.MCPToolClient``, not a client of ours): it makes a session over
``POST /mcp``, attaches a ``/ws`` to reset it, then lists and calls tools over JSON-RPC.
An episode played through MCP calls earns what the same tool calls earn through the local
Env; reset, step, state and close are never tools; a bad call is a clear error; one
session's calls never reach another's episode; sessions whose client vanished end.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_root
from serving import runs_of, server, wait_gone
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym.agent import reference_agent, run_episode
from infragym.env import Env
from infragym.tasks import find_task

mcp_client = pytest.importorskip("openenv.core.mcp_client", reason="needs the openenv extra")
MCPToolClient = mcp_client.MCPToolClient

pytestmark = needs_root


def client(url: str) -> Any:
    return MCPToolClient(base_url=url, message_timeout_s=600)


def rpc(url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One raw JSON-RPC request to POST /mcp."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    req = urllib.request.Request(
        url + "/mcp", body.encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return dict(json.loads(r.read()))


async def reset_and_close(env: Env, seed: int) -> Any:
    try:
        return await env.reset(seed=seed)
    finally:
        await env.close()


def test_mcp_calls_play_kv_replicated_for_the_reward_of_the_local_env(tmp_path: Path) -> None:
    """The naive reference's tool calls as MCP tools/call, seed 1: the tools are the
    episode's (the Env's schemas, host_bash for its dev hosts), none of OpenEnv's
    reserved names; submit ends the episode and reports the grade, as locally."""
    task = find_task("kv-replicated")
    agent = reference_agent(task, "naive")
    local_tools = asyncio.run(reset_and_close(Env(task), seed=1)).tools

    async def play(url: str, pid: int) -> dict[str, Any]:
        async with client(url) as env:
            assert await env.list_tools(use_cache=False) == []  # no episode yet
            first = await env.reset(task="kv-replicated", seed=1)
            assert first.metadata["task"] == "kv-replicated" and first.metadata["seed"] == 1
            assert "linearizable" in first.metadata["instructions"]
            tools = {t.name: t for t in await env.list_tools(use_cache=False)}
            schemas = {s.name: s for s in local_tools}  # the local Env's, seed 1
            assert (
                set(tools)
                == set(schemas)
                == {"bash", "read_file", "write_file", "host_bash", "submit"}
            )
            for name, tool in tools.items():
                assert tool.input_schema == schemas[name].parameters, name
                assert tool.description == schemas[name].description, name
            hosts = tools["host_bash"].input_schema["properties"]["host"]["enum"]
            assert hosts == first.metadata["dev_hosts"]
            runs = runs_of(pid)
            assert runs, "the episode made no sandbox on the server"
            for call in agent.actions:
                out = await env.call_tool(call.name, **dict(call.arguments))  # type: ignore[arg-type]
                assert not out["done"] and out["reward"] == 0.0 and not out["is_error"], out
            out = await env.call_tool("bash", command="ls")
            assert "server.py" in out["content"] and "[exit code 0]" in out["content"]
            assert (await env.state()).step_count == len(agent.actions) + 1
            last = await env.call_tool("submit")
            assert last["done"] and last["metadata"]["terminated"]
            grade = last["metadata"]["grade"]
            assert grade["reward"] == last["reward"] and grade["breakdown"], grade
            wait_gone(pid, runs)
            with pytest.raises(RuntimeError, match="no episode is running: send reset"):
                await env.call_tool("bash", command="true")
            return dict(last)

    with server(tmp_path, "kv-replicated") as (proc, url):
        last = asyncio.run(play(url, proc.pid))
        assert runs_of(proc.pid) == []
    local = asyncio.run(run_episode(Env(task), reference_agent(task, "naive"), seed=1))
    assert last["reward"] == pytest.approx(local.reward, abs=0.02), (last["reward"], local.reward)
    assert last["reward"] == pytest.approx(0.25, abs=0.02)  # naive's cap, as in the README


def test_bad_calls_are_errors_and_sessions_stay_apart(tmp_path: Path) -> None:
    """Two MCP sessions, an episode each: what one writes the other cannot read; a call
    naming no known session is refused; a bad call is an MCP error that says what is
    wrong and counts as a step, as over step; reset/step/state/close are not tools; each
    session's submit grades its own workspace; closing the clients removes everything."""
    tiny_task(tmp_path, grader=WORKSPACE_GRADER)

    async def play(url: str, pid: int) -> None:
        async with client(url) as a, client(url) as b:
            await a.reset(seed=1)
            await b.reset(seed=2)
            assert len(runs_of(pid)) == 4  # a workstation and a dev host each
            await a.call_tool("write_file", path="answer.txt", content="42")
            seen = await a.call_tool("read_file", path="answer.txt")
            assert seen["content"].startswith("42"), seen
            with pytest.raises(RuntimeError, match=r"answer\.txt"):
                await b.call_tool("read_file", path="answer.txt")  # b's workspace has none
            out = await b.call_tool("bash", command="cat answer.txt; ls /workspace")
            assert "42" not in out["content"] and "No such file" in out["content"], out
            with pytest.raises(RuntimeError, match=r"unexpected argument 'cmd' \(it takes"):
                await b.call_tool("bash", cmd="true")
            with pytest.raises(RuntimeError, match="missing required argument"):
                await b.call_tool("write_file", path="x")
            with pytest.raises(RuntimeError, match="must be one of"):
                await b.call_tool("host_bash", host="nowhere", command="true")
            assert (await b.state()).step_count == 5  # the bad calls count, as steps do
            for reserved in ("reset", "step", "state", "close"):
                with pytest.raises(RuntimeError, match="Unknown tool"):
                    await a.call_tool(reserved)
            names = {t.name for t in await a.list_tools(use_cache=False)}
            assert not names & {"reset", "step", "state", "close"}, names
            stranger = rpc(url, "tools/call", {
                "name": "bash", "arguments": {"command": "true"},
                "session_id": "00000000-0000-0000-0000-000000000000"})  # fmt: skip
            assert "Unknown session_id" in stranger["error"]["message"], stranger
            ra = await a.call_tool("submit")
            rb = await b.call_tool("submit")
            assert (ra["reward"], rb["reward"]) == (1.0, 0.0), (ra, rb)
        assert runs_of(pid) == []

    with server(tmp_path, str(tmp_path / "tiny"), max_sessions=2) as (proc, url):
        asyncio.run(play(url, proc.pid))


def test_mcp_messages_on_a_ws_session_reach_its_tools(tmp_path: Path) -> None:
    """OpenEnv's {"type": "mcp"} message on a plain /ws session (no POST /mcp): JSON-RPC
    tools/list and tools/call act in that session's episode; the /mcp WebSocket, whose
    sessions could never reset, is refused."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    tiny_task(tmp_path, grader=WORKSPACE_GRADER)
    with server(tmp_path, str(tmp_path / "tiny"), max_sessions=1) as (proc, url):
        ws_url = url.replace("http", "ws", 1)

        def ask(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
            ws.send(json.dumps(message))
            return dict(json.loads(ws.recv(timeout=120)))

        def mcp(ws: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
            rpc_msg = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
            return ask(ws, {"type": "mcp", "data": rpc_msg})["data"]

        with connect(ws_url + "/ws") as ws:
            assert mcp(ws, "tools/list", {})["result"]["tools"] == []
            ask(ws, {"type": "reset", "data": {"seed": 1}})
            names = [t["name"] for t in mcp(ws, "tools/list", {})["result"]["tools"]]
            assert names == ["bash", "read_file", "write_file", "host_bash", "submit"]
            args = {"path": "answer.txt", "content": "42"}
            mcp(ws, "tools/call", {"name": "write_file", "arguments": args})
            bad = mcp(ws, "tools/call", {"name": "bash", "arguments": {}})
            assert "missing required argument(s) 'command'" in bad["error"]["message"], bad
            done = mcp(ws, "tools/call", {"name": "submit", "arguments": {}})["result"]
            assert done["is_error"] is False and done["structured_content"]["reward"] == 1.0
            assert done["structured_content"]["done"] is True, done
        with pytest.raises(InvalidStatus, match="403"), connect(ws_url + "/mcp"):
            pass  # refused at the handshake
        assert runs_of(proc.pid) == []


def test_mcp_calls_keep_a_session_alive_and_a_vanished_client_loses_it(
    tmp_path: Path,
) -> None:
    """Session timeout 3 s: a session busy with an MCP call of 8 s (its /ws silent, OpenEnv's
    reaper looking every 5 s for sessions quiet for 3 s with no /ws) keeps its episode; one
    whose client vanishes without closing loses it, and the episode is removed."""
    tiny_task(tmp_path, grader=WORKSPACE_GRADER)

    async def play(url: str, pid: int) -> None:
        async with client(url) as env:
            await env.reset(seed=1)
            out = await env.call_tool("bash", command="sleep 8; echo slept")
            assert "slept" in out["content"], out
            out = await env.call_tool("write_file", path="answer.txt", content="42")
            assert not out["is_error"]
            assert (await env.state()).step_count == 2
            assert (await env.call_tool("submit"))["reward"] == 1.0
        gone = client(url)
        await gone.reset(seed=2)
        runs = runs_of(pid)
        assert runs
        await gone._disconnect_async()  # its /ws drops; the MCP session is never closed
        await asyncio.to_thread(wait_gone, pid, runs, 40)
        await gone.close()

    with server(tmp_path, str(tmp_path / "tiny"), max_sessions=1, timeout=3) as (proc, url):
        asyncio.run(play(url, proc.pid))
        assert runs_of(proc.pid) == []
