"""Helpers for tests that drive Env episodes: tool calls and the run records an episode
holds (shared by the Env, security and hostile-SUT tests)."""

from __future__ import annotations

import os
from typing import Any

from infragym.env import Env, SyncEnv, ToolCall
from infragym.sandbox import _state


def bash(command: str, timeout: float | None = None) -> ToolCall:
    args: dict[str, Any] = {"command": command}
    if timeout is not None:
        args["timeout"] = timeout
    return ToolCall("bash", args)


def run_ids(env: Env | SyncEnv) -> list[str]:
    e = env.env if isinstance(env, SyncEnv) else env
    ids = [e.workstation.run_id] if e.workstation else []
    return ids + ([e.dev_cluster.run_id] if e.dev_cluster else [])


def runs_of_this_process() -> list[str]:
    """Run records this test process still holds: each names what an episode left."""
    return [r.run_id for r in _state.all_records() if r.owner_pid == os.getpid()]
