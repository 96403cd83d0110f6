"""The client side of ``infragym serve``'s session protocol (see the package's doc)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .._errors import ConfigError, InfraGymError, ResourceError
from ..env import EpisodeError, ResetObservation, StepResult, ToolCall, ToolObservation, ToolSpec
from ..grading import GradeResult
from ..tasks import Limits as TaskLimits

# the Env options a remote client may set; the rest (artifacts_dir, sandbox limits, a
# progress callback) belong to whoever runs the server
REMOTE_OPTIONS = (
    "max_output_bytes",
    "max_read_bytes",
    "max_write_bytes",
    "max_steps",
    "agent_wall_s",
    "command_timeout_s",
    "workspace_bytes",
    "scratch_bytes",
)
CAPACITY = "CAPACITY_REACHED"
EPISODE_ERROR = "EpisodeError: "
MAX_MESSAGE_BYTES = 64 << 20  # a step's answer: the tool's capped output and the grade


@dataclass(frozen=True)
class RemoteTask:
    """What an agent reads of the task it plays: its name and its instructions as the
    server rendered them for this episode."""

    name: str
    instructions: str


def servers_from(spec: str | Sequence[str]) -> list[str]:
    """Server base URLs from ``"http://a:8000,http://b:8000"`` or a list; each must be
    http(s)://host:port (a path is kept, a trailing slash dropped)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    urls = [u.strip().rstrip("/") for u in items if u.strip()]
    if not urls:
        raise ConfigError("no server given: pass --server http://HOST:PORT (comma-separated)")
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"server {u!r} is not an http(s)://HOST:PORT URL")
    if len(set(urls)) != len(urls):
        raise ConfigError("a server is listed twice")
    return urls


def _ws_url(base: str) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


class RemoteEnv:
    """An episode of ``task`` on the server at ``url``: ``reset``, ``step``, ``close`` as
    :class:`~infragym.env.Env` has them (``task`` and ``tools`` are known after a reset).

    ``options`` are the Env options a client may set (the server's ``REMOTE_OPTIONS``);
    ``message_timeout_s`` bounds the wait for one answer (a submit's grading takes
    minutes); ``capacity_wait_s`` is how long a reset keeps retrying a server at capacity.
    """

    def __init__(
        self,
        url: str,
        task: str,
        *,
        options: Mapping[str, Any] | None = None,
        message_timeout_s: float = 1800.0,
        capacity_wait_s: float = 600.0,
    ) -> None:
        (self.url,) = servers_from([url])
        self.task_name = task
        self.options = dict(options or {})
        self.message_timeout_s = message_timeout_s
        self.capacity_wait_s = capacity_wait_s
        self.task: RemoteTask | None = None
        self.instructions = ""  # as Env has them, for the agents: set by a reset
        self.dev_hosts: tuple[str, ...] = ()
        self.tools: tuple[ToolSpec, ...] = ()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> RemoteEnv:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the session -----------------------------------------------------------------------

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is not None and not self._ws.closed:
            return self._ws
        await self.close()
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(
                _ws_url(self.url), max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30.0
            )
        except (aiohttp.ClientError, OSError) as exc:
            await self.close()
            raise ResourceError(
                f"cannot reach the infragym server at {self.url}: {exc} (is `infragym serve` "
                "running there, and is the address right?)"
            ) from None
        return self._ws

    async def _call(self, kind: str, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        ws = await self._connect()
        message: dict[str, Any] = {"type": kind}
        if data is not None:
            message["data"] = dict(data)
        try:
            await ws.send_str(json.dumps(message))
            raw = await asyncio.wait_for(ws.receive(), self.message_timeout_s)
        except TimeoutError:
            await self.close()
            raise ResourceError(
                f"the server at {self.url} did not answer {kind} within "
                f"{self.message_timeout_s:g} s; the session was closed"
            ) from None
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            await self.close()
            raise ResourceError(
                f"the connection to {self.url} broke during {kind}: {exc}"
            ) from None
        if raw.type is not aiohttp.WSMsgType.TEXT:
            await self.close()
            raise ResourceError(
                f"the server at {self.url} closed the session during {kind} "
                f"({raw.type.name}{': ' + str(raw.extra) if raw.extra else ''})"
            )
        try:
            answer = json.loads(raw.data)
        except ValueError:
            answer = None
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or not isinstance(data, dict | None):
            await self._malformed(kind, f"what is not a session message: {str(raw.data)[:200]!r}")
        if answer.get("type") == "error":
            await self._raise(kind, data or {})
        return dict(data or {})

    async def _malformed(self, kind: str, what: str) -> NoReturn:
        """A server answer this client cannot read: the session ends, as a platform
        failure (a broken or foreign server must not crash the run it is part of)."""
        await self.close()
        raise ResourceError(f"the server at {self.url} answered {kind} with {what[:500]}")

    async def _raise(self, kind: str, error: Mapping[str, Any]) -> None:
        text = str(error.get("message", "unknown error"))
        code = str(error.get("code", ""))
        if code == CAPACITY or CAPACITY in text:
            await self.close()  # the server closes a refused session
            raise ResourceError(f"{self.url} is at capacity: {text}")
        if text.startswith(EPISODE_ERROR):
            await self.close()
            raise EpisodeError(f"on {self.url}: {text[len(EPISODE_ERROR) :]}")
        if kind == "step":  # a step that failed otherwise ends the episode on the server
            await self.close()
        raise InfraGymError(f"{self.url} refused {kind}: {text}" + (f" ({code})" if code else ""))

    # -- Env's interface -------------------------------------------------------------------

    async def reset(self, seed: int | None = None) -> ResetObservation:
        """Start an episode on the server (retrying while it is at capacity)."""
        data = {"task": self.task_name, "seed": seed, "options": self.options}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.capacity_wait_s
        delay = 0.5
        while True:
            try:
                obs = (await self._call("reset", data)).get("observation") or {}
                break
            except ResourceError as exc:
                if "at capacity" not in str(exc) or loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        try:
            tools = tuple(
                ToolSpec(str(f["function"]["name"]), str(f["function"].get("description", "")),
                         dict(f["function"].get("parameters", {})))
                for f in obs.get("tools", [])
            )  # fmt: skip
            limits = obs.get("limits", {})
            reset = ResetObservation(
                instructions=str(obs["instructions"]),
                tools=tools,
                task=str(obs["task"]),
                seed=int(obs["seed"]),
                dev_hosts=tuple(str(h) for h in obs.get("dev_hosts", ())),
                limits=TaskLimits(
                    max_steps=int(limits["max_steps"]),
                    agent_wall_s=float(limits["agent_wall_s"]),
                    command_timeout_s=float(limits["command_timeout_s"]),
                ),
                variant=dict(obs.get("variant") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            await self._malformed("reset", f"an observation that is not one ({exc!r})")
        self.tools, self.dev_hosts = reset.tools, reset.dev_hosts
        self.instructions = reset.instructions
        self.task = RemoteTask(reset.task, reset.instructions)
        return reset

    async def step(self, call: ToolCall) -> StepResult:
        """One tool call on the server; the last step carries the grade in ``info``."""
        if self._ws is None or self._ws.closed:
            raise ConfigError("no episode is running on the server: reset first")
        args = call.arguments if isinstance(call.arguments, str) else dict(call.arguments)
        payload = {"name": call.name, "arguments": args, "id": call.id}
        answer = await self._call("step", payload)
        try:
            obs = answer.get("observation") or {}
            meta = dict(answer.get("metadata") or obs.get("metadata") or {})
            terminated = bool(meta.pop("terminated", False))
            truncated = bool(meta.pop("truncated", False))
            info: dict[str, Any] = dict(meta)
            if meta.get("grade") is not None:
                info["grade"] = GradeResult.model_validate(meta["grade"])
            elif terminated or truncated:
                raise ValueError("the episode ended without a grade")
            result = StepResult(
                ToolObservation(
                    content=str(obs.get("content", "")),
                    tool=str(obs.get("tool", call.name)),
                    call_id=None if obs.get("call_id") is None else str(obs["call_id"]),
                    is_error=bool(obs.get("is_error", False)),
                ),
                float(answer.get("reward") or 0.0),
                terminated,
                truncated,
                info,  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            await self._malformed("step", f"a step result that is not one ({exc!r})")
        if terminated or truncated:
            await self.close()
        return result

    async def state(self) -> dict[str, Any]:
        """The server's view of the episode: its id, step count and limits."""
        return await self._call("state")

    async def close(self) -> None:
        """End the session; the server removes the episode if one still runs."""
        ws, session = self._ws, self._session
        self._ws = self._session = None
        if ws is not None and not ws.closed:
            try:
                await ws.send_str(json.dumps({"type": "close"}))
            except (aiohttp.ClientError, OSError, ConnectionError, RuntimeError):
                pass
            await ws.close()
        if session is not None:
            await session.close()
