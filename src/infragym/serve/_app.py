"""The server: OpenEnv's FastAPI app for :class:`InfraGymEnvironment`, behind a guard that
ends idle sessions, refuses the per-call HTTP routes, and ends every episode at shutdown;
and ``serve``, which runs it under uvicorn.

MCP: ``POST /mcp`` is OpenEnv's JSON-RPC endpoint (``openenv/session/create``,
``tools/list``, ``tools/call`` and ``openenv/session/close`` with a ``session_id``), and a
``/ws`` connection may attach to such a session (``?session_id=``) to reset it, as
OpenEnv's ``MCPToolClient`` does; ``{"type": "mcp"}`` messages on a ``/ws`` session reach
the same tools. An attached ``/ws`` counts the session's MCP calls as activity; a session
with no ``/ws`` attached ends after the session timeout without a call (OpenEnv's reaper).
The ``/mcp`` WebSocket, whose sessions could never reset, is refused."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from openenv.core.env_server import ConcurrencyConfig, ServerMode, create_fastapi_app
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import ConfigError
from ..env import EnvOptions
from ..tasks import Task
from ._environment import Episodes, InfraGymEnvironment
from ._models import InfraGymObservation, InfraGymResetObservation, InfraGymState, ToolCallAction

GRACE_S = 5  # at SIGTERM, after the episodes ended, how long handlers get before cancelling
REFUSED = ("/reset", "/step", "/state")  # per-call routes: sessions cannot be bounded


def create_app(
    tasks: Sequence[Task],
    *,
    max_sessions: int = 4,
    session_timeout: float = 300.0,
    options: EnvOptions | None = None,
) -> Guard:
    """An ASGI app serving ``tasks`` over OpenEnv's WebSocket session at ``/ws`` (with
    ``/health``, ``/schema`` and ``/metadata``): at most ``max_sessions`` sessions and
    episodes at once, and a session whose client sends nothing for ``session_timeout``
    seconds is closed and its episode removed."""
    if not tasks:
        raise ConfigError("no task to serve: install a task or give --tasks")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"two served tasks share a name: {sorted(names)}")
    if max_sessions < 1:
        raise ConfigError(f"max_sessions must be at least 1, not {max_sessions}")
    if not session_timeout > 0:
        raise ConfigError(f"session_timeout must be positive seconds, not {session_timeout}")
    episodes = Episodes({t.name: t for t in tasks}, max_sessions, options or EnvOptions())
    app = create_fastapi_app(
        functools.partial(InfraGymEnvironment, episodes),
        ToolCallAction,
        InfraGymObservation,
        # the timeout reaps sessions no /ws is attached to (made over POST /mcp)
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=max_sessions, session_timeout=session_timeout
        ),
        env_name="infragym",
        state_cls=InfraGymState,
        mode=ServerMode.PRODUCTION,  # no per-call /reset, /step, /state
        reset_observation_cls=InfraGymResetObservation,
    )
    return Guard(app, episodes, session_timeout)


class Activity:
    """The MCP calls over HTTP of each session: how many are running, when the last ended."""

    def __init__(self, forget_s: float) -> None:
        self.forget_s = forget_s
        self.running: dict[str, int] = {}
        self.last: dict[str, float] = {}

    @contextlib.contextmanager
    def call(self, session_id: str | None) -> Any:
        if session_id is None:
            yield
            return
        self.running[session_id] = self.running.get(session_id, 0) + 1
        try:
            yield
        finally:
            now = time.monotonic()
            self.running[session_id] -= 1
            if not self.running[session_id]:
                del self.running[session_id]
            self.last[session_id] = now
            for sid in [s for s, t in self.last.items() if now - t > self.forget_s]:
                del self.last[sid]

    def quiet_for(self, session_id: str) -> float:
        """Seconds since the session's last MCP call ended; 0 while one runs."""
        if session_id in self.running:
            return 0.0
        return time.monotonic() - self.last.get(session_id, float("-inf"))


class Guard:
    """ASGI middleware: an idle timeout on every WebSocket session (MCP calls over HTTP
    count for the session they name), the per-call routes refused, and every episode ended
    before the app's shutdown."""

    def __init__(self, app: ASGIApp, episodes: Episodes, idle_s: float) -> None:
        self.app = app
        self.episodes = episodes
        self.idle_s = idle_s
        self.activity = Activity(2 * idle_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, self._lifespan(receive), send)
            return
        path = str(scope.get("path", ""))
        if any(path == p or path.startswith(p + "/") for p in REFUSED) or (
            kind == "websocket" and path == "/mcp"
        ):
            await _refuse(kind, path, send)
            return
        if kind == "websocket":
            await self._websocket(scope, receive, send)
            return
        if kind == "http" and path == "/mcp":
            await self._mcp(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A JSON-RPC request: read whole to learn its session, then handed on."""
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def again() -> Message:
            return replay.pop() if replay else await receive()

        with self.activity.call(_session_of(body)):
            await self.app(scope, again, send)

    def _lifespan(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.episodes.close_all()
            return message

        return wrapped

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        connected = False
        idle_closed = False
        attached = _query_session(scope)  # a session made over POST /mcp, or None
        pending: asyncio.Future[Message] | None = None

        async def wrapped_receive() -> Message:
            nonlocal connected, idle_closed, pending
            if not connected:  # websocket.connect: no timeout before the handshake
                connected = True
                return await receive()
            wait = self.idle_s
            while True:
                pending = pending or asyncio.ensure_future(receive())
                done, _ = await asyncio.wait({pending}, timeout=wait)
                if done:
                    message, pending = pending.result(), None
                    return message
                quiet = self.activity.quiet_for(attached) if attached else self.idle_s
                if quiet < self.idle_s:  # its MCP calls keep the session alive
                    wait = self.idle_s - quiet
                    continue
                pending.cancel()
                idle_closed = True
                reason = f"no message for {self.idle_s:g} s: the session and its episode ended"
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": 1001, "reason": reason})
                return {"type": "websocket.disconnect", "code": 1001}

        async def wrapped_send(message: Message) -> None:
            if not idle_closed:
                await send(message)

        await self.app(scope, wrapped_receive, wrapped_send)


def _session_of(body: bytes) -> str | None:
    try:
        params = json.loads(body).get("params") or {}
        sid = params.get("session_id")
    except (ValueError, AttributeError):
        return None
    return sid if isinstance(sid, str) else None


def _query_session(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_id")
    return values[0] if values else None


async def _refuse(kind: str, path: str, send: Send) -> None:
    text = (
        f"{path} is not offered: infragym episodes run over the WebSocket session at /ws "
        "(reset, step, state, close; MCP tools over POST /mcp), so every episode is bounded "
        "and cleaned up"
    )
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "use /ws"})
        return
    if kind != "http":
        return
    body = ('{"detail": "' + text + '"}').encode()
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve(
    tasks: Sequence[Task],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_sessions: int = 4,
    session_timeout: float = 300.0,
    options: EnvOptions | None = None,
    log_level: str = "info",
) -> None:
    """Run the server until SIGINT or SIGTERM; then every session is closed and every
    episode removed before it returns."""
    import uvicorn

    app = create_app(
        tasks, max_sessions=max_sessions, session_timeout=session_timeout, options=options
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # end the episodes first: a step running a long command ends at once (its
            # client is told the episode ended), rather than at the grace period's end
            await app.episodes.close_all()
            await super().shutdown(sockets)

    config: Any = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level=log_level,
        timeout_graceful_shutdown=GRACE_S,
    )
    Server(config).run()
