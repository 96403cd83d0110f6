"""The agent's tools over MCP, for agents that act through MCP: each session has a FastMCP
server of its own whose tools are those of the session's episode (``bash``, ``read_file``,
``write_file``, ``host_bash`` when the task has dev hosts, ``submit``), with the schemas the
Env gives agents. A call is a step of that episode, and nothing else: the tools never
include reset, step, state or close (OpenEnv's reserved names), and a session's server
reaches no other session's episode.

A call answers with the tool's output as text and, as structured content, the step's
observation (``content``, ``is_error``, ``done``, ``reward``, ``metadata``: the grade at
the end). A bad call (unknown argument, path outside the workspace...) still counts as a
step, as it does over ``step``, and is an MCP error carrying what the model is told.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastmcp import Client, FastMCP
from fastmcp.tools import Tool
from fastmcp.tools.base import ToolResult
from mcp.types import TextContent
from pydantic import PrivateAttr

from ..env import ToolSpec

# a tool call of the session's episode: (name, arguments) -> (text, observation, is_error)
Play = Callable[[str, dict[str, Any]], Awaitable[tuple[str, dict[str, Any], bool]]]

RESERVED = frozenset({"reset", "step", "state", "close"})


class EpisodeTool(Tool):
    """One of the episode's tools, offered over MCP; running it plays one step."""

    _play: Play | None = PrivateAttr(default=None)

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        assert self._play is not None
        text, observation, is_error = await self._play(self.name, dict(arguments))
        return ToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content=observation,
            is_error=is_error,
        )


class SessionTools:
    """A session's MCP server and the in-process client OpenEnv calls it through."""

    def __init__(self, play: Play) -> None:
        self._play = play
        self.server: FastMCP[Any] = FastMCP("infragym", mask_error_details=False)
        self.client: Client[Any] = Client(self.server)
        self._offered: list[str] = []

    def offer(self, specs: Sequence[ToolSpec]) -> None:
        """Offer the tools of a new episode in place of the last one's."""
        names = [s.name for s in specs]
        if RESERVED & set(names):
            raise ValueError(f"an agent tool may not be named {sorted(RESERVED & set(names))}")
        for name in self._offered:
            self.server.local_provider.remove_tool(name)
        self._offered = []
        for spec in specs:
            tool = EpisodeTool(
                name=spec.name, description=spec.description, parameters=dict(spec.parameters)
            )
            tool._play = self._play
            self.server.add_tool(tool)
            self._offered.append(spec.name)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Client[Any]]:
        """Held open by OpenEnv for the session's life (reentrant)."""
        async with self.client:
            yield self.client
