"""One OpenEnv session: an infragym :class:`~infragym.env.Env` behind OpenEnv's
``Environment`` interface (its tool calls also offered over MCP), and the server-wide count
of the episodes that exist."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

from openenv.core.env_server import Environment
from openenv.core.env_server.types import EnvironmentMetadata

from .. import __version__
from .._errors import ConfigError, ResourceError
from ..env import Env, EnvOptions, EpisodeError, StepResult, ToolCall
from ..remote import REMOTE_OPTIONS
from ..tasks import Task
from ._mcp import SessionTools
from ._models import InfraGymObservation, InfraGymResetObservation, InfraGymState, ToolCallAction


class Episodes:
    """The episodes of one server: at most ``limit`` exist at once, counted from reset to
    the end of their teardown; ``close_all`` ends every one (at shutdown)."""

    def __init__(self, tasks: Mapping[str, Task], limit: int, options: EnvOptions) -> None:
        self.tasks = dict(tasks)
        self.limit = limit
        self.options = options
        self.live: set[Env] = set()
        self.ending: set[Env] = set()
        self.resetting: set[Env] = set()  # being built: closing them now would race the build
        self.closing = False
        self._pending: set[asyncio.Task[None]] = set()

    def later(self, task: asyncio.Task[None]) -> None:
        """Keep a teardown scheduled on the loop alive until it is done."""
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def claim(self, env: Env) -> None:
        if self.closing:
            raise ResourceError("the server is shutting down: no new episode starts")
        if len(self.live) >= self.limit:
            raise ResourceError(
                f"the server is at capacity: {len(self.live)} episode(s) run and "
                f"--max-sessions is {self.limit}; retry when one ends"
            )
        self.live.add(env)

    async def end(self, env: Env) -> None:
        self.ending.add(env)
        try:
            await env.close()
        finally:
            self.live.discard(env)
            self.ending.discard(env)

    def ended(self, env: Env) -> bool:
        """Whether ``env``'s episode was ended (or is being ended) by the server."""
        return env not in self.live or env in self.ending

    async def close_all(self) -> None:
        self.closing = True
        while self.resetting:  # a reset takes seconds; then its episode is ended here
            await asyncio.sleep(0.1)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        for env in list(self.live):
            with contextlib.suppress(Exception):
                await self.end(env)


class InfraGymEnvironment(Environment[ToolCallAction, InfraGymObservation, InfraGymState]):
    """The environment of one session. ``reset(task=..., seed=..., options=...)`` starts an
    episode of a served task; each ``step`` is one tool call, and so is each MCP
    ``tools/call`` (``mcp_client``, ``mcp_server`` and ``mcp_session`` are what OpenEnv's
    MCP routes look for). Calls of a session run one at a time, in the order they came."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, episodes: Episodes) -> None:
        super().__init__()
        self._episodes = episodes
        self._env: Env | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = InfraGymState()
        self._started = 0.0
        self._closed = False
        self._turn = asyncio.Lock()  # a reset or a tool call at a time, from /ws or MCP
        self._tools = SessionTools(self._mcp_call)
        self.mcp_server = self._tools.server
        self.mcp_client = self._tools.client

    def mcp_session(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._tools.session()

    # -- OpenEnv's interface ---------------------------------------------------------------

    def reset(
        self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any
    ) -> InfraGymResetObservation:
        raise ConfigError("infragym episodes run over the WebSocket session at /ws")

    def step(
        self, action: ToolCallAction, timeout_s: float | None = None, **kwargs: Any
    ) -> InfraGymObservation:
        raise ConfigError("infragym episodes run over the WebSocket session at /ws")

    async def reset_async(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task: str | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> InfraGymResetObservation:
        if kwargs:
            raise ConfigError(
                f"unknown reset argument(s) {', '.join(sorted(kwargs))}; known: task, seed, "
                "episode_id, options"
            )
        async with self._turn:
            return await self._reset(seed, episode_id, task, options)

    async def _reset(
        self,
        seed: int | None,
        episode_id: str | None,
        task: str | None,
        options: Mapping[str, Any] | None,
    ) -> InfraGymResetObservation:
        if self._closed:
            raise ConfigError("this session is closed: open a new connection")
        self._loop = asyncio.get_running_loop()
        await self._end_episode()
        env = Env(self._task(task), self._options(options))
        self._episodes.claim(env)
        self._env = env
        self._episodes.resetting.add(env)
        try:
            obs = await env.reset(seed=seed)
        except BaseException:
            await self._end_episode()
            raise
        finally:
            self._episodes.resetting.discard(env)
        if self._episodes.closing:
            await self._end_episode()
            raise ResourceError("the server is shutting down: the episode was removed")
        self._tools.offer(obs.tools)
        self._started = time.monotonic()
        self._state = InfraGymState(
            episode_id=episode_id or str(uuid.uuid4()),
            step_count=0,
            task=obs.task,
            seed=obs.seed,
            running=True,
            max_steps=obs.limits.max_steps,
            agent_wall_s=obs.limits.agent_wall_s,
            command_timeout_s=obs.limits.command_timeout_s,
        )
        fields: dict[str, Any] = {
            "instructions": obs.instructions,
            "task": obs.task,
            "seed": obs.seed,
            "episode_id": self._state.episode_id or "",
            "dev_hosts": list(obs.dev_hosts),
            "variant": dict(obs.variant),
            "limits": {
                "max_steps": obs.limits.max_steps,
                "agent_wall_s": obs.limits.agent_wall_s,
                "command_timeout_s": obs.limits.command_timeout_s,
            },
        }
        # OpenEnv's MCPToolClient reads an observation with a "tools" field as a tool
        # list and keeps only its metadata: the fields are there too (the tools are MCP's)
        return InfraGymResetObservation(tools=obs.openai_tools(), metadata=fields, **fields)

    async def step_async(
        self, action: ToolCallAction, timeout_s: float | None = None, **kwargs: Any
    ) -> InfraGymObservation:
        async with self._turn:
            return await self._play(ToolCall(action.name, action.arguments, action.id))

    async def _mcp_call(
        self, name: str, arguments: dict[str, Any]
    ) -> tuple[str, dict[str, Any], bool]:
        """An MCP tools/call: the same step, its observation as structured content."""
        async with self._turn:
            obs = await self._play(ToolCall(name, arguments))
        return obs.content, obs.model_dump(mode="json"), obs.is_error

    async def _play(self, call: ToolCall) -> InfraGymObservation:
        env = self._env
        if env is None:
            raise ConfigError(
                "no episode is running: send reset first (a finished episode needs a new reset)"
            )
        self._state.step_count += 1
        try:
            result = await env.step(call)
        except EpisodeError as exc:
            await self._end_episode()
            # OpenEnv sends str(exc) as the error message: say what kind of failure it is
            raise EpisodeError(f"EpisodeError: {exc}", exc.grade) from exc
        except BaseException:
            await self._end_episode()
            raise
        if self._episodes.ended(env):  # the server shut down under the step
            await self._end_episode()
            raise EpisodeError(
                "EpisodeError: the server is shutting down; the episode is over and has no reward"
            )
        self._state.elapsed_s = time.monotonic() - self._started
        done = result.terminated or result.truncated
        if done:
            await self._end_episode()
        return _observation(result, done)

    @property
    def state(self) -> InfraGymState:
        if self._state.running:
            self._state.elapsed_s = time.monotonic() - self._started
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        names = ", ".join(sorted(self._episodes.tasks))
        return EnvironmentMetadata(
            name="infragym",
            description=(
                "Infrastructure engineering tasks graded on real processes under real "
                f"faults. Tasks: {names}. reset takes task, seed and options "
                f"({', '.join(REMOTE_OPTIONS)}); step takes one tool call "
                "{name, arguments, id}."
            ),
            version=__version__,
        )

    def close(self) -> None:
        """End the episode, if one runs, and remove everything it made (OpenEnv calls
        this from a worker thread when the session ends)."""
        self._closed = True
        loop = self._loop
        if self._env is None or loop is None or loop.is_closed():
            return
        if _on_loop(loop):  # called from the loop itself: end it there, soon
            self._episodes.later(loop.create_task(self._end_episode()))
            return
        asyncio.run_coroutine_threadsafe(self._end_episode(), loop).result()

    # -- helpers ---------------------------------------------------------------------------

    def _task(self, name: str | None) -> Task:
        tasks = self._episodes.tasks
        if name is None:
            if len(tasks) == 1:
                return next(iter(tasks.values()))
            raise ConfigError(f"reset needs a task: one of {', '.join(sorted(tasks))}")
        if name not in tasks:
            raise ConfigError(
                f"this server does not serve task {name!r}; it serves {', '.join(sorted(tasks))}"
            )
        return tasks[name]

    def _options(self, options: Mapping[str, Any] | None) -> EnvOptions:
        given = dict(options or {})
        refused = sorted(set(given) - set(REMOTE_OPTIONS))
        if refused:
            raise ConfigError(
                f"option(s) {', '.join(refused)} cannot be set by a client; "
                f"known: {', '.join(REMOTE_OPTIONS)}"
            )
        base = {k: getattr(self._episodes.options, k) for k in REMOTE_OPTIONS}
        fixed = {
            k: getattr(self._episodes.options, k)
            for k in ("sandbox_limits", "dev_host_limits", "artifacts_dir")
        }
        return EnvOptions.from_kwargs(**{**base, **given, **fixed})

    async def _end_episode(self) -> None:
        env, self._env = self._env, None
        self._state.running = False
        if env is not None:
            await self._episodes.end(env)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _observation(result: StepResult, done: bool) -> InfraGymObservation:
    obs = result.observation
    meta: dict[str, Any] = {k: v for k, v in result.info.items() if k != "grade"}
    meta["terminated"] = result.terminated
    meta["truncated"] = result.truncated
    grade = result.info.get("grade")
    if grade is not None:
        meta["grade"] = grade.model_dump(mode="json")
    return InfraGymObservation(
        content=obs.content,
        tool=obs.tool,
        call_id=obs.call_id,
        is_error=obs.is_error,
        done=done,
        reward=result.reward,
        metadata=meta,
    )
