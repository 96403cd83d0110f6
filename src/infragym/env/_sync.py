"""A blocking wrapper for scripts: the same episode API, without ``await``.

It owns one event loop (an :class:`asyncio.Runner`) for its whole life, because an episode's
processes and pipes belong to the loop that started them. Do not use it from inside a
running event loop; use :class:`Env` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ._env import Env
from ._types import ResetObservation, StepResult, ToolCall, ToolSpec

__all__ = ["SyncEnv"]


class SyncEnv:
    """``SyncEnv(infragym.make(name))``: ``reset``, ``step`` and ``close`` that block."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self._runner = asyncio.Runner()
        self._closed = False

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        return self.env.tools

    def reset(self, *, seed: int | None = None) -> ResetObservation:
        return self._runner.run(self.env.reset(seed=seed))

    def step(self, action: ToolCall | Mapping[str, Any]) -> StepResult:
        return self._runner.run(self.env.step(action))

    def close(self) -> None:
        """End any running episode and close the event loop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._runner.run(self.env.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncEnv:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
