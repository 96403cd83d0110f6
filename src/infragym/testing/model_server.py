"""A scripted OpenAI-compatible model server on loopback.

It speaks enough of the chat-completions protocol for an agent's tool-calling loop:
``POST /v1/chat/completions`` (non-streaming, with ``usage``) and ``GET /v1/models``. Each
completion request takes the next entry of the script: a :class:`Reply` (text and/or tool
calls), a :class:`Fail` (an HTTP error, ``times`` times in a row, as a rate limit or an
overloaded server gives them) or a function of the request body that returns either. It
checks the bearer key (401) and the model name (404) as hosted APIs do, and logs every
request in :attr:`ScriptedModelServer.requests`. :func:`with_summaries` answers an agent's
compaction requests (``tool_choice="none"``) apart from its turns.

::

    async with ScriptedModelServer([Fail(429, times=2), Reply.tool("submit")]) as server:
        agent = OpenAIAgent(model="test-model", base_url=server.url, api_key=server.api_key)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from .._errors import ConfigError
from ..tasks import Task

__all__ = [
    "Call",
    "Fail",
    "RecordedRequest",
    "Reply",
    "ScriptEntry",
    "ScriptedModelServer",
    "by_turn",
    "reference_script",
    "with_summaries",
]


@dataclass(frozen=True)
class Call:
    """One tool call of a reply; ``arguments`` as a mapping or raw (possibly invalid) JSON."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)

    def wire(self, call_id: str) -> dict[str, Any]:
        args = self.arguments
        text = args if isinstance(args, str) else json.dumps(dict(args))
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": text},
        }


@dataclass(frozen=True)
class Reply:
    """An assistant message: optional text, optional tool calls (none of either is an
    empty response), sent after ``delay_s`` seconds (a slow server, for timeouts)."""

    content: str | None = None
    calls: tuple[Call, ...] = ()
    delay_s: float = 0.0

    @classmethod
    def tool(
        cls, name: str, arguments: Mapping[str, Any] | str | None = None, content: str | None = None
    ) -> Reply:
        return cls(content, (Call(name, {} if arguments is None else arguments),))

    @classmethod
    def text(cls, content: str) -> Reply:
        return cls(content)


@dataclass(frozen=True)
class Fail:
    """An HTTP error answered ``times`` requests in a row. ``retry_after_ms`` goes out as
    the ``retry-after-ms`` header (None: no header, the client backs off on its own)."""

    status: int
    times: int = 1
    message: str = "scripted failure"
    retry_after_ms: int | None = 10


ScriptEntry = Reply | Fail | Callable[[dict[str, Any]], Reply | Fail]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received and the status it answered."""

    method: str
    path: str
    body: dict[str, Any] | None
    status: int
    at: float

    @property
    def is_summary(self) -> bool:
        """A compaction's request for a summary (it asks for no tool call)."""
        return (self.body or {}).get("tool_choice") == "none"

    @property
    def message_chars(self) -> int:
        """Characters of message content and tool-call arguments (what a budget counts)."""
        msgs = (self.body or {}).get("messages") or []
        return sum(_message_chars(m) for m in msgs if isinstance(m, dict))


def _message_chars(m: Mapping[str, Any]) -> int:
    n = len(m["content"]) if isinstance(m.get("content"), str) else 0
    for tc in m.get("tool_calls") or []:
        fn = tc.get("function") or {}
        n += len(str(fn.get("arguments", ""))) + len(str(fn.get("name", "")))
    return n


class ScriptedModelServer:
    """Replays ``script`` over HTTP on 127.0.0.1 (ephemeral port). When the script runs
    out it answers with ``then`` (default: a ``submit`` tool call, so an agent ends)."""

    def __init__(
        self,
        script: Sequence[ScriptEntry] = (),
        *,
        models: Sequence[str] = ("test-model",),
        api_key: str | None = "test-key",
        then: ScriptEntry | None = None,
    ) -> None:
        self.models = tuple(models)
        self.api_key = api_key
        self.then: ScriptEntry = then if then is not None else Reply.tool("submit")
        self.requests: list[RecordedRequest] = []
        self._script = list(script)
        self._pos = 0
        self._failed = 0  # how many times the current Fail entry has been answered
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """The base URL an OpenAI client takes (``http://127.0.0.1:PORT/v1``)."""
        if self._runner is None:
            raise ConfigError("the model server is not running: call start() first")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def completions(self) -> list[RecordedRequest]:
        """The chat-completion requests, in order."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def remaining(self) -> int:
        """Script entries not yet used up."""
        return len(self._script) - self._pos

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> ScriptedModelServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- handlers ------------------------------------------------------------------------

    def _log(self, request: web.Request, body: dict[str, Any] | None, status: int) -> None:
        self.requests.append(
            RecordedRequest(request.method, request.path, body, status, time.time())
        )

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == (
            f"Bearer {self.api_key}"
        )

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self._log(request, None, 401)
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        self._log(request, None, 200)
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "infragym"} for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._log(request, None, 400)
            return _error(400, "the request body is not a JSON object", "invalid_request")
        if not self._authorized(request):
            self._log(request, body, 401)
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        model = body.get("model")
        if model not in self.models:
            self._log(request, body, 404)
            return _error(404, f"The model `{model}` does not exist.", "model_not_found")
        entry = self._next()
        answer = entry(body) if callable(entry) else entry
        if isinstance(answer, Fail):
            self._log(request, body, answer.status)
            headers = {}
            if answer.retry_after_ms is not None:
                headers["retry-after-ms"] = str(answer.retry_after_ms)
            return _error(answer.status, answer.message, "scripted", headers)
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        self._log(request, body, 200)
        return web.json_response(self._completion(body, str(model), answer))

    def _next(self) -> ScriptEntry:
        if self._pos >= len(self._script):
            return self.then
        entry = self._script[self._pos]
        if isinstance(entry, Fail):
            self._failed += 1
            if self._failed >= entry.times:
                self._pos, self._failed = self._pos + 1, 0
        else:
            self._pos += 1
        return entry

    def _completion(self, body: dict[str, Any], model: str, reply: Reply) -> dict[str, Any]:
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.calls:
            message["tool_calls"] = [c.wire(f"call_{n}_{i}") for i, c in enumerate(reply.calls)]
        msgs = body.get("messages") or []
        prompt = sum(_message_chars(m) for m in msgs if isinstance(m, dict)) // 4 + 1
        completion = _message_chars(message) // 4 + 1
        return {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.calls else "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }


def _error(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return web.json_response(body, status=status, headers=headers)


def reference_script(task: Task, tier: str = "robust") -> list[Reply]:
    """A model that writes reference solution ``tier`` of ``task`` with ``write_file``
    calls, one file per reply, then submits."""
    root: Path = task.solution(tier)
    replies = [
        Reply.tool(
            "write_file",
            {"path": str(p.relative_to(root)), "content": p.read_text("utf-8")},
            content=f"Writing {p.relative_to(root)}.",
        )
        for p in sorted(q for q in root.rglob("*") if q.is_file())
    ]
    return [*replies, Reply.tool("submit")]


def by_turn(replies: Sequence[Reply]) -> Callable[[dict[str, Any]], Reply]:
    """A script entry for many conversations at once: it answers a request by how many
    assistant turns its conversation already has (``replies[n]``, then ``submit``), so
    ``ScriptedModelServer(then=by_turn(script))`` serves any number of concurrent
    episodes the same script, whatever order their requests arrive in."""
    plan = list(replies)

    def answer(body: dict[str, Any]) -> Reply:
        msgs = body.get("messages") or []
        n = sum(1 for m in msgs if isinstance(m, dict) and m.get("role") == "assistant")
        return plan[n] if n < len(plan) else Reply.tool("submit")

    return answer


def with_summaries(
    turns: ScriptEntry, summary: Callable[[dict[str, Any]], Reply | Fail]
) -> Callable[[dict[str, Any]], Reply | Fail]:
    """A script entry that answers an agent's compaction requests (``tool_choice`` is
    ``"none"``) with ``summary(body)`` and every other request with ``turns`` (a reply, a
    single failure, or a function of the body)."""

    def answer(body: dict[str, Any]) -> Reply | Fail:
        if body.get("tool_choice") == "none":
            return summary(body)
        return turns(body) if callable(turns) else turns

    return answer
