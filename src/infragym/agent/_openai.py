"""A model-backed agent for any OpenAI-compatible chat-completions endpoint.

vLLM, SGLang and hosted APIs all speak this protocol, so one loop serves them: send the
conversation and the env's tools, run each tool call the model makes through
:meth:`Env.step`, answer it with a ``tool`` message, repeat until the episode ends.

What a model gets wrong stays inside the episode: invalid JSON arguments or an unknown
tool come back as a tool error (the env's rule); a reply without a tool call gets a
reminder, and after ``max_no_tool_turns`` of them in a row the agent submits, so the
workspace is graded as it stands. What the *server* gets wrong does not: 429 and 5xx are
retried with backoff by the SDK (``max_retries``); after that, or on a bad key (401), an
unknown model (404) or an unreachable server, the episode is closed ungraded and
:class:`ModelError` (a :class:`ConfigError` for 401/403/404) says what to do.

Old tool outputs are elided to keep what is sent within ``context_chars``; the system
prompt, the instructions and the last ``keep_tool_results`` tool results stay whole. A
server that still refuses the request for its context length (a 400 saying so, as vLLM,
SGLang and OpenAI do) gets it again with the budget halved, for the rest of the episode,
until the budget would fall below what the instructions need.
:attr:`OpenAIAgent.messages` is the full transcript in chat format, unelided.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI

from .._errors import ConfigError, InfraGymError
from ..env import Env, EpisodeError, StepResult, ToolCall

__all__ = ["ModelConfigError", "ModelError", "OpenAIAgent", "RequestUsage", "fit_to_budget"]

SYSTEM_PROMPT = (
    "You are a senior infrastructure engineer working in a sandboxed workspace. Do the task "
    "below by calling the tools you are given; every reply must call at least one tool. "
    "When your system is ready, call submit: it is then deployed and graded under faults."
)
# how servers say a request is longer than the model's context (vLLM, SGLang, OpenAI)
CONTEXT_MARKERS = (
    "context length",
    "context_length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "maximum context",
)
NO_TOOL_REMINDER = (
    "Your reply called no tool. Work only through tool calls; call submit when you are done. "
    "({n} of {k} replies without a tool call in a row: at {k} the workspace is submitted as "
    "it stands.)"
)


class ModelError(InfraGymError):
    """The model server could not be used; the episode is over, ungraded. ``reason`` is a
    short tag (``auth``, ``model_not_found``, ``rate_limited``, ``server_error``,
    ``connection``, ``bad_request``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ModelConfigError(ModelError, ConfigError):
    """The agent is configured wrongly for its server: a bad key or an unknown model."""


@dataclass(frozen=True)
class RequestUsage:
    """One chat-completion request: tokens as the server counted them, and timing."""

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    elapsed_s: float
    sent_chars: int
    finish_reason: str | None


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


@dataclass
class OpenAIAgent:
    """Plays an episode with a model behind an OpenAI-compatible endpoint.

    ``model``, ``base_url`` and ``api_key`` default to ``INFRAGYM_MODEL``,
    ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``. ``extra_body`` passes server-specific
    parameters (e.g. vLLM's ``top_k``).
    """

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    extra_body: Mapping[str, Any] | None = None
    max_retries: int = 5
    request_timeout_s: float = 600.0
    context_chars: int = 400_000
    keep_tool_results: int = 4
    max_no_tool_turns: int = 3
    system_prompt: str = SYSTEM_PROMPT
    close_on_model_error: bool = True  # False: the caller decides (grade or close)
    name: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: list[RequestUsage] = field(default_factory=list)
    end_reason: str | None = None
    no_tool_turns: int = 0
    budget_chars: int = 0  # the context budget in force: context_chars, halved on overflow

    def __post_init__(self) -> None:
        self.model = self.model or _env("INFRAGYM_MODEL")
        self.base_url = self.base_url or _env("OPENAI_BASE_URL")
        self.api_key = self.api_key or _env("OPENAI_API_KEY")
        if not self.model:
            raise ConfigError("no model given: set INFRAGYM_MODEL or pass model=...")
        if self.api_key is None:
            if self.base_url is None:
                raise ConfigError(
                    "no API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server"
                )
            self.api_key = "EMPTY"  # vLLM and SGLang accept any key unless told otherwise
        if self.max_retries < 0 or self.keep_tool_results < 0 or self.max_no_tool_turns < 1:
            raise ConfigError(
                "max_retries and keep_tool_results must be >= 0 and max_no_tool_turns >= 1"
            )
        if self.context_chars < 1000:
            raise ConfigError(f"context_chars must be at least 1000, not {self.context_chars}")
        self.name = self.name or f"openai:{self.model}"

    async def play(self, env: Env) -> StepResult:
        """Run the tool-calling loop until the episode ends. On a server failure the
        episode is closed ungraded and :class:`ModelError` is raised."""
        self.messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": env.instructions},
        ]
        self.usage, self.end_reason, self.no_tool_turns = [], None, 0
        self.budget_chars = self.context_chars
        if sum(len(m["content"]) for m in self.messages) > self.context_chars:
            raise ConfigError(
                f"the instructions alone exceed context_chars={self.context_chars}: raise it"
            )
        tools = [t.openai() for t in env.tools]
        client = AsyncOpenAI(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=self.max_retries,
            timeout=self.request_timeout_s,
        )
        try:
            return await self._loop(env, client, tools)
        except ModelError as exc:
            self.end_reason = f"model_error:{exc.reason}"
            if self.close_on_model_error:
                await env.close()
            raise
        except EpisodeError:
            self.end_reason = "episode_error"
            raise
        finally:
            await client.close()

    async def _loop(self, env: Env, client: AsyncOpenAI, tools: list[dict[str, Any]]) -> StepResult:
        in_a_row = 0
        while True:
            message = await self._complete(client, tools)
            calls = [tc.model_dump() for tc in message.tool_calls or []]
            turn: dict[str, Any] = {"role": "assistant", "content": message.content}
            if calls:
                turn["tool_calls"] = calls
            self.messages.append(turn)
            if not calls:
                self.no_tool_turns += 1
                in_a_row += 1
                if in_a_row >= self.max_no_tool_turns:
                    self.end_reason = "no_tool_call"
                    return await env.step(ToolCall("submit", {}))
                reminder = NO_TOOL_REMINDER.format(n=in_a_row, k=self.max_no_tool_turns)
                self.messages.append({"role": "user", "content": reminder})
                continue
            in_a_row = 0
            for raw in calls:
                call = ToolCall.parse(raw)
                result = await env.step(call)
                answer = result.observation.as_message()
                answer["tool_call_id"] = raw.get("id")
                self.messages.append(answer)
                if result.terminated or result.truncated:
                    self.end_reason = str(result.info.get("end_reason", "submit"))
                    return result

    async def _complete(self, client: AsyncOpenAI, tools: list[dict[str, Any]]) -> Any:
        floor = sum(message_chars(m) for m in self.messages[:2]) + 1000
        last_size: int | None = None
        while True:
            sent = fit_to_budget(self.messages, self.budget_chars, self.keep_tool_results)
            params: dict[str, Any] = {"model": self.model, "messages": sent, "tools": tools}
            for key in ("temperature", "top_p", "max_tokens", "seed"):
                if getattr(self, key) is not None:
                    params[key] = getattr(self, key)
            if self.extra_body:
                params["extra_body"] = dict(self.extra_body)
            start = time.monotonic()
            try:
                response = await client.chat.completions.create(**params)
                break
            except openai.BadRequestError as exc:
                size = sum(message_chars(m) for m in sent)
                # cutting must shrink what is sent, or the same request would go forever
                shrunk = last_size is None or size < last_size
                if not _context_overflow(exc) or size // 2 < floor or not shrunk:
                    raise self._explain(exc) from None
                last_size = size
                self.budget_chars = size // 2  # and keep it: the next turn is longer
            except openai.APIError as exc:
                raise self._explain(exc) from None
        u = response.usage
        choice = response.choices[0] if response.choices else None
        self.usage.append(
            RequestUsage(
                prompt_tokens=u.prompt_tokens if u else None,
                completion_tokens=u.completion_tokens if u else None,
                total_tokens=u.total_tokens if u else None,
                elapsed_s=time.monotonic() - start,
                sent_chars=sum(message_chars(m) for m in sent),
                finish_reason=choice.finish_reason if choice else None,
            )
        )
        if choice is None:
            return openai.types.chat.ChatCompletionMessage(role="assistant", content=None)
        return choice.message

    def _explain(self, exc: openai.APIError) -> ModelError:
        where = f"the model server at {self.base_url or 'the default OpenAI endpoint'}"
        status = getattr(exc, "status_code", None)
        detail = str(exc)[:300]
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return ModelConfigError(
                f"{where} rejected the API key ({status}): set OPENAI_API_KEY or pass api_key=",
                "auth",
            )
        if isinstance(exc, openai.NotFoundError):
            return ModelConfigError(
                f"{where} does not serve model {self.model!r} (404): set INFRAGYM_MODEL or "
                "model= to one it lists at GET /v1/models (and check OPENAI_BASE_URL ends "
                "in /v1)",
                "model_not_found",
            )
        if isinstance(exc, openai.RateLimitError):
            return ModelError(
                f"{where} kept rate-limiting (429) after {self.max_retries} retries: lower "
                "the concurrency or raise max_retries",
                "rate_limited",
            )
        if isinstance(exc, openai.BadRequestError) and _context_overflow(exc):
            return ModelError(
                f"{where} says the conversation exceeds the model's context even with it cut "
                f"to {self.budget_chars} characters: lower context_chars to what the model "
                f"holds (about 3 characters a token) or serve a longer context ({detail})",
                "context_length",
            )
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(
                f"cannot reach {where} ({detail}): is it running? set OPENAI_BASE_URL",
                "connection",
            )
        if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
            return ModelError(
                f"{where} kept failing ({status}) after {self.max_retries} retries: {detail}",
                "server_error",
            )
        return ModelError(f"{where} refused the request ({status}): {detail}", "bad_request")


def _context_overflow(exc: openai.APIError) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in CONTEXT_MARKERS)


def message_chars(m: Mapping[str, Any]) -> int:
    """What a message costs against the budget: its text and its tool calls' arguments."""
    n = len(m["content"]) if isinstance(m.get("content"), str) else 0
    for tc in m.get("tool_calls") or []:
        fn = tc.get("function") or {}
        n += len(str(fn.get("name", ""))) + len(str(fn.get("arguments", "")))
    return n


def _elided(n: int, what: str) -> str:
    return f"[{what} of {n} characters elided to fit the context budget]"


def fit_to_budget(
    messages: list[dict[str, Any]], budget: int, keep_tool_results: int
) -> list[dict[str, Any]]:
    """What to send: ``messages`` with the oldest tool outputs elided, then the oldest
    assistant text and tool-call arguments, then (last resort) the kept tool results cut,
    until the total is within ``budget`` characters. The first two messages (system
    prompt, instructions) are never touched; ``messages`` itself is not changed."""
    out = [dict(m) for m in messages]
    total = sum(message_chars(m) for m in out)
    if total <= budget:
        return out
    tool_idx = [i for i, m in enumerate(out) if m.get("role") == "tool"]
    kept = set(tool_idx[-keep_tool_results:]) if keep_tool_results else set()
    tail = min(kept) if kept else len(out) - 1
    old_tools = [i for i in tool_idx if i not in kept]
    old_asst = [i for i in range(2, tail) if out[i].get("role") == "assistant"]

    def shrink(i: int, what: str) -> None:
        nonlocal total
        m = out[i]
        before = message_chars(m)
        if isinstance(m.get("content"), str) and len(m["content"]) > 80:
            m["content"] = _elided(len(m["content"]), what)
        if m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                fn = dict(tc.get("function") or {})
                args = str(fn.get("arguments", ""))
                if len(args) > 80:
                    fn["arguments"] = f'{{"elided": "{len(args)} characters"}}'
                calls.append({**tc, "function": fn})
            m["tool_calls"] = calls
        total -= before - message_chars(m)

    for i in old_tools:
        if total <= budget:
            return out
        shrink(i, "tool output")
    for i in old_asst:
        if total <= budget:
            return out
        shrink(i, "assistant message")
    for i in sorted(kept):
        if total <= budget:
            return out
        m = out[i]
        text = m.get("content")
        if isinstance(text, str):
            over = total - budget
            keep = max(0, len(text) - over - 200)
            m["content"] = text[:keep] + "\n" + _elided(len(text) - keep, "tool output tail")
            total -= len(text) - len(m["content"])
    for i in range(2, len(out)):
        if total <= budget:
            break
        shrink(i, "message")
    return out
