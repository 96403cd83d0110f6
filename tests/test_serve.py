"""`infragym serve` against OpenEnv's own client (``openenv.core.GenericEnvClient``, from
the ``openenv`` package, not a client of ours): an episode played remotely earns what the
same tool calls earn locally; vanished clients, idle clients, the session limit, platform
failures and SIGTERM leave no episode behind.

The server runs as a subprocess on 127.0.0.1. Leak tests use the tiny task (one dev host,
a grader that reads the workspace); only the headline test grades kv-replicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_no_leftovers, needs_root
from serving import runs_of, server, wait_gone
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym.agent import reference_agent, run_episode
from infragym.env import Env, ToolCall
from infragym.tasks import find_task

openenv_core = pytest.importorskip("openenv.core", reason="needs the openenv extra")
GenericEnvClient = openenv_core.GenericEnvClient

pytestmark = needs_root


def client(url: str) -> Any:
    return GenericEnvClient(base_url=url, message_timeout_s=300).sync()


@contextmanager
def two_episodes(proc: subprocess.Popen[bytes], url: str) -> Iterator[tuple[Any, Any, list[str]]]:
    """Two sessions, each with an episode (seeds 1 and 2): their clients and the server's
    four sandbox runs (a workstation and a dev host each); the clients closed after."""
    a, b = client(url), client(url)
    try:
        a.connect()
        b.connect()
        a.reset(seed=1)
        b.reset(seed=2)
        runs = runs_of(proc.pid)
        assert len(runs) == 4, runs
        yield a, b, runs
    finally:
        for c in (a, b):
            with contextlib.suppress(Exception):  # the server may be gone
                c.close()


def payload(call: ToolCall) -> dict[str, Any]:
    return {"name": call.name, "arguments": dict(call.arguments)}  # type: ignore[arg-type]


def test_openenv_client_plays_kv_replicated_for_the_same_reward_as_the_local_env(
    tmp_path: Path,
) -> None:
    """The robust reference's tool calls (write_file of each file, then submit), seed 1:
    through OpenEnv's client and `infragym serve`, and through the local Env."""
    task = find_task("kv-replicated")
    agent = reference_agent(task, "robust")
    with server(tmp_path, "kv-replicated") as (proc, url), client(url) as env:
        first = env.reset(task="kv-replicated", seed=1)
        assert first.observation["task"] == "kv-replicated" and not first.done
        assert {t["function"]["name"] for t in first.observation["tools"]} >= {
            "bash", "write_file", "submit"}
        state = env.state()
        assert state["step_count"] == 0 and state["max_steps"] >= len(agent.actions) + 1
        runs = runs_of(proc.pid)
        assert runs, "the episode made no sandbox on the server"
        for call in agent.actions:
            r = env.step(payload(call))
            assert not r.done and r.reward == 0.0 and not r.observation["is_error"], r
        assert env.state()["step_count"] == len(agent.actions)
        last = env.step({"name": "submit", "arguments": {}})
        assert last.done
        grade = last.metadata["grade"]
        assert grade["reward"] == last.reward and grade["breakdown"], grade
        wait_gone(proc.pid, runs)
    local = asyncio.run(run_episode(Env(task), reference_agent(task, "robust"), seed=1))
    assert last.reward == pytest.approx(local.reward, abs=0.02), (last.reward, local.reward)
    assert last.reward > 0.9  # the robust reference: ~1.0 unless the machine is overloaded


def test_vanished_idle_and_surplus_clients_leave_nothing(tmp_path: Path) -> None:
    """A client that drops its socket mid-episode and one that stops sending both lose
    their episode, which is removed; a connection beyond --max-sessions gets a capacity
    error; of three clients racing for the freed slot one plays, with its Env options."""
    tiny_task(tmp_path, grader=WORKSPACE_GRADER)
    with server(tmp_path, str(tmp_path / "tiny"), max_sessions=1, timeout=3) as (proc, url):
        # 1. a client that vanishes: its socket closes without a close message
        env = client(url)
        env.connect()
        env.reset(seed=1)
        runs = runs_of(proc.pid)
        assert len(runs) == 2, runs  # the workstation and the dev host
        with client(url) as surplus, pytest.raises(RuntimeError, match="CAPACITY_REACHED"):
            surplus.reset(seed=1)
        env.disconnect()  # drops the socket; the episode is still running on the server
        wait_gone(proc.pid, runs)

        # 2. a client that stops sending: after the session timeout its episode ends
        with client(url) as idle:
            idle.reset(seed=2)
            runs = runs_of(proc.pid)
            assert runs
            wait_gone(proc.pid, runs, within=30)
        # 3. three clients at once for the one free slot: one plays, two are refused
        clients = [client(url) for _ in range(3)]
        outcomes: list[Any] = []

        def attempt(c: Any) -> None:
            try:
                c.connect()
                c.reset(seed=3, options={"max_steps": 5})
                outcomes.append(c)
            except RuntimeError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=attempt, args=(c,)) for c in clients]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            winners = [o for o in outcomes if not isinstance(o, Exception)]
            assert len(outcomes) == 3 and len(winners) == 1, outcomes
            refused = [str(o) for o in outcomes if isinstance(o, Exception)]
            assert all("CAPACITY_REACHED" in m and "1/1" in m for m in refused), refused
            env2 = winners[0]
            assert env2.state()["max_steps"] == 5  # the client's Env option
            with pytest.raises(RuntimeError, match="artifacts_dir cannot be set by a client"):
                env2.reset(seed=3, options={"artifacts_dir": "/etc"})
            env2.reset(seed=3)
            env2.step({"name": "write_file", "arguments": {"path": "answer.txt", "content": "42"}})
            r = env2.step({"name": "submit", "arguments": {}})
            assert r.done and r.reward == 1.0 and r.metadata["grade"]["breakdown"] == {
                "answer": 1.0}
            assert runs_of(proc.pid) == []
        finally:
            for c in clients:
                c.close()


def test_a_platform_failure_is_an_error_message_not_a_reward_of_0(tmp_path: Path) -> None:
    tiny_task(tmp_path, grader="async def grade(ctx):\n    raise RuntimeError('boom')\n")
    with server(tmp_path, str(tmp_path / "tiny")) as (proc, url), client(url) as env:
        env.reset(seed=1)
        runs = runs_of(proc.pid)
        with pytest.raises(RuntimeError, match=r"EpisodeError: grading failed.*no reward"):
            env.step({"name": "submit", "arguments": {}})
        wait_gone(proc.pid, runs)


def test_sigterm_ends_every_session_and_removes_every_episode(tmp_path: Path) -> None:
    """One session waits for its client, the other is in the middle of a long command:
    SIGTERM ends both, removes both episodes and the server exits."""
    tiny_task(tmp_path, grader=WORKSPACE_GRADER, command_timeout=120)
    with server(tmp_path, str(tmp_path / "tiny"), max_sessions=2) as (proc, url), two_episodes(
        proc, url
    ) as (_, b, runs):
        busy: list[BaseException | object] = []

        def long_step() -> None:
            try:
                busy.append(b.step({"name": "bash", "arguments": {"command": "sleep 100"}}))
            except BaseException as exc:
                busy.append(exc)

        t = threading.Thread(target=long_step)
        t.start()
        time.sleep(1)
        os.kill(proc.pid, signal.SIGTERM)
        rc = proc.wait(60)  # a running step gets a few seconds, then is cancelled
        assert rc in (0, -signal.SIGTERM), rc
        t.join(60)
        # no observation and no reward: the error message, or a closed connection
        # when the shutdown closed the socket before the message went out
        assert busy and isinstance(busy[0], Exception), busy
        assert "EpisodeError" in str(busy[0]) or not isinstance(busy[0], RuntimeError)
        for run_id in runs:
            assert_no_leftovers(run_id)


def test_a_killed_server_leaves_nothing_cleanup_does_not_remove(tmp_path: Path) -> None:
    """SIGKILL gives the server no chance to tidy: two sessions' episodes (workstations,
    dev hosts, a command running in one) are left for `infragym cleanup`, which removes
    every one of them, processes included."""
    tiny_task(tmp_path, grader=WORKSPACE_GRADER, command_timeout=120)
    with server(tmp_path, str(tmp_path / "tiny"), max_sessions=2) as (proc, url), two_episodes(
        proc, url
    ) as (_, b, runs):
        ended: list[BaseException] = []

        def long_step() -> None:
            try:
                b.step({"name": "bash", "arguments": {"command": "sleep 300"}})
            except BaseException as exc:  # the server died under it
                ended.append(exc)

        t = threading.Thread(target=long_step, daemon=True)
        t.start()
        time.sleep(1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        t.join(30)
        assert ended, "the step cannot have succeeded: its server was killed"
        assert set(runs) <= set(_state_run_ids()), "a killed server removed nothing"
        r = subprocess.run(
            [sys.executable, "-m", "infragym.cli.main", "cleanup", "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert set(runs) <= set(json.loads(r.stdout)["runs"]), r.stdout
        for run_id in runs:
            assert_no_leftovers(run_id)


def _state_run_ids() -> list[str]:
    from infragym.sandbox import _state

    return [r.run_id for r in _state.all_records()]
