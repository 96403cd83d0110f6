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

Over hundreds of turns eliding is not enough. With ``compaction=True``, when eliding the
old tool outputs no longer brings the conversation within budget, the agent asks the
model, in a request of its own (the same endpoint and tools, ``tool_choice="none"``), to
summarise the episode, and carries on from a fresh conversation: the system prompt, the
instructions, the summary and the most recent turns that fit (:mod:`._context`). A
summary that fails (an HTTP error, a timeout, an empty, cut-off or oversized answer) does
not end the episode: the agent elides harder (old assistant text, then whole turns
between the earliest and the latest, so every request stays within budget) and tries
again later, at most ``compact_max_failures`` times in a row.

:attr:`OpenAIAgent.messages` is the full transcript in chat format, unelided, with each
compaction's request and summary in it where they happened;
:attr:`OpenAIAgent.compactions` records every attempt, and :attr:`OpenAIAgent.usage`
every request, the summaries' too (``kind="summary"``).
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
from ._context import (
    COMPACTION_NAME,
    Compaction,
    after_summary,
    drop_middle_turns,
    fit_stage,
    fit_to_budget,
    message_chars,
    summary_instruction,
    summary_message,
    total_chars,
)

__all__ = [
    "Compaction",
    "ModelConfigError",
    "ModelError",
    "OpenAIAgent",
    "RequestUsage",
    "fit_to_budget",
    "message_chars",
]

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
COMPACT_RETRY_TURNS = 4  # after a failed compaction: turns before the next try, doubling


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
    """One chat-completion request: tokens as the server counted them, and timing.
    ``kind`` is ``turn`` (the model acting) or ``summary`` (a compaction's request)."""

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    elapsed_s: float
    sent_chars: int
    finish_reason: str | None
    kind: str = "turn"


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


@dataclass
class OpenAIAgent:
    """Plays an episode with a model behind an OpenAI-compatible endpoint.

    ``model``, ``base_url`` and ``api_key`` default to ``INFRAGYM_MODEL``,
    ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``. ``extra_body`` passes server-specific
    parameters (e.g. vLLM's ``top_k``).

    Compaction (off unless ``compaction=True``): ``context_chars`` is the budget it keeps;
    ``compact_keep_turns`` recent turns at most are carried past a summary (those that fit
    in half the budget); a summary may be ``summary_chars`` long (and no longer than leaves
    half the budget free); its request times out after ``summary_timeout_s`` (default
    ``request_timeout_s``); after ``compact_max_failures`` failed summaries in a row the
    agent stops asking for the rest of the episode.
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
    compaction: bool = False
    compact_keep_turns: int = 4
    summary_chars: int = 8_000
    summary_timeout_s: float | None = None
    compact_max_failures: int = 3
    close_on_model_error: bool = True  # False: the caller decides (grade or close)
    name: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: list[RequestUsage] = field(default_factory=list)
    end_reason: str | None = None
    no_tool_turns: int = 0
    budget_chars: int = 0  # the context budget in force: context_chars, halved on overflow
    compactions: list[Compaction] = field(default_factory=list)
    turns: int = 0  # the model's replies in this episode, summaries not counted
    context: list[dict[str, Any]] = field(default_factory=list)  # what is sent, unelided
    # messages of `context` never elided: system prompt, instructions (and a summary)
    _head: int = field(default=2, init=False, repr=False)
    _failures: int = field(default=0, init=False, repr=False)  # failed compactions in a row
    # the turn from which a compaction may be tried; None: no more this episode
    _next_compaction: int | None = field(default=0, init=False, repr=False)

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
        if self.compact_keep_turns < 0 or self.compact_max_failures < 1:
            raise ConfigError("compact_keep_turns must be >= 0 and compact_max_failures >= 1")
        if self.summary_chars < 200:
            raise ConfigError(f"summary_chars must be at least 200, not {self.summary_chars}")
        # a run of another configuration is another agent (the run store tells them apart)
        self.name = self.name or f"openai:{self.model}" + ("+compaction" if self.compaction else "")

    async def play(self, env: Env) -> StepResult:
        """Run the tool-calling loop until the episode ends. On a server failure the
        episode is closed ungraded and :class:`ModelError` is raised."""
        self.messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": env.instructions},
        ]
        self.usage, self.end_reason, self.no_tool_turns = [], None, 0
        self.budget_chars = self.context_chars
        self.compactions, self.turns, self.context = [], 0, list(self.messages)
        self._head, self._failures, self._next_compaction = 2, 0, 0
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
            if self.compaction:
                await self._maybe_compact(client, tools)
            message = await self._complete(client, tools)
            self.turns += 1
            calls = [tc.model_dump() for tc in message.tool_calls or []]
            turn: dict[str, Any] = {"role": "assistant", "content": message.content}
            if calls:
                turn["tool_calls"] = calls
            self._add(turn)
            if not calls:
                self.no_tool_turns += 1
                in_a_row += 1
                if in_a_row >= self.max_no_tool_turns:
                    self.end_reason = "no_tool_call"
                    return await env.step(ToolCall("submit", {}))
                reminder = NO_TOOL_REMINDER.format(n=in_a_row, k=self.max_no_tool_turns)
                self._add({"role": "user", "content": reminder})
                continue
            in_a_row = 0
            for raw in calls:
                call = ToolCall.parse(raw)
                result = await env.step(call)
                answer = result.observation.as_message()
                answer["tool_call_id"] = raw.get("id")
                self._add(answer)
                if result.terminated or result.truncated:
                    self.end_reason = str(result.info.get("end_reason", "submit"))
                    return result

    def _add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.context.append(message)

    def _params(self, sent: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": sent, "tools": tools}
        for key in ("temperature", "top_p", "max_tokens", "seed"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        if self.extra_body:
            params["extra_body"] = dict(self.extra_body)
        return params

    def _fit(self, budget: int) -> list[dict[str, Any]]:
        if not self.compaction:
            return fit_to_budget(self.context, budget, self.keep_tool_results, self._head)
        # compaction's fallback: old text elided, then middle turns left out, and only
        # then the latest tool results cut
        sent, _ = fit_stage(self.context, budget, self.keep_tool_results, self._head, 2)
        sent = drop_middle_turns(sent, budget, self._head)
        return fit_to_budget(sent, budget, self.keep_tool_results, self._head)

    def _record_usage(self, response: Any, start: float, sent: list[dict[str, Any]], kind: str
                      ) -> Any:  # fmt: skip
        u = response.usage
        choice = response.choices[0] if response.choices else None
        self.usage.append(
            RequestUsage(
                prompt_tokens=u.prompt_tokens if u else None,
                completion_tokens=u.completion_tokens if u else None,
                total_tokens=u.total_tokens if u else None,
                elapsed_s=time.monotonic() - start,
                sent_chars=total_chars(sent),
                finish_reason=choice.finish_reason if choice else None,
                kind=kind,
            )
        )
        return choice

    async def _complete(self, client: AsyncOpenAI, tools: list[dict[str, Any]]) -> Any:
        floor = total_chars(self.context[: self._head]) + 1000
        last_size: int | None = None
        while True:
            sent = self._fit(self.budget_chars)
            start = time.monotonic()
            try:
                response = await client.chat.completions.create(**self._params(sent, tools))
                break
            except openai.BadRequestError as exc:
                size = total_chars(sent)
                # cutting must shrink what is sent, or the same request would go forever
                shrunk = last_size is None or size < last_size
                if not _context_overflow(exc) or size // 2 < floor or not shrunk:
                    raise self._explain(exc) from None
                last_size = size
                self.budget_chars = size // 2  # and keep it: the next turn is longer
            except openai.APIError as exc:
                raise self._explain(exc) from None
        choice = self._record_usage(response, start, sent, "turn")
        if choice is None:
            return openai.types.chat.ChatCompletionMessage(role="assistant", content=None)
        return choice.message

    async def _maybe_compact(self, client: AsyncOpenAI, tools: list[dict[str, Any]]) -> None:
        """Compact when eliding the old tool outputs will soon no longer keep the
        conversation and the summary request within budget: the request asking for the
        summary then shows the model all its own messages."""
        if self._next_compaction is None or self.turns < self._next_compaction:
            return
        head = total_chars(self.context[:2]) + len(summary_message("", 99, self.turns)["content"])
        limit = min(self.summary_chars, self.budget_chars // 2 - head)
        instruction = summary_instruction(limit)
        room = self.budget_chars - message_chars(instruction)
        margin = self.budget_chars // 20  # a turn's growth: the request fits at stage 1
        if fit_stage(self.context, room - margin, self.keep_tool_results, self._head)[1] < 2:
            return
        before = total_chars(self.context)
        at = len(self.messages)
        sent: list[dict[str, Any]] = []
        summary: str | None
        reason: str | None
        if limit < 200:
            summary, reason = None, "no room for a summary: the instructions take half the budget"
        else:
            sent = [*self._fit(room), instruction]
            summary, reason = await self._summarise(client, tools, sent, limit)
        n = len(self.compactions) + 1
        if summary is not None:
            self._failures, self._next_compaction = 0, self.turns + 1
            self.messages.append({**instruction, "name": COMPACTION_NAME})
            self.messages.append({"role": "assistant", "name": COMPACTION_NAME, "content": summary})
            self.context = after_summary(
                self.context,
                summary_message(summary, n, self.turns),
                self.compact_keep_turns,
                self.budget_chars,
            )
            self._head = 3
        else:
            self._failures += 1
            wait = COMPACT_RETRY_TURNS * 2 ** (self._failures - 1)
            give_up = self._failures >= self.compact_max_failures
            self._next_compaction = None if give_up else self.turns + wait
        self.compactions.append(
            Compaction(
                n=n,
                turn=self.turns,
                at_message=at,
                ok=summary is not None,
                reason=reason,
                request_chars=total_chars(sent),
                summary_chars=len(summary or ""),
                context_chars_before=before,
                context_chars_after=total_chars(self.context),
                kept_messages=len(self.context) - 3 if summary is not None else 0,
                retry_at_turn=None if summary is not None else self._next_compaction,
            )
        )

    async def _summarise(
        self, client: AsyncOpenAI, tools: list[dict[str, Any]], sent: list[dict[str, Any]],
        limit: int,
    ) -> tuple[str | None, str | None]:  # fmt: skip
        """The model's summary, or None and why there is none."""
        params = {**self._params(sent, tools), "tool_choice": "none"}
        timeout = self.summary_timeout_s or self.request_timeout_s
        start = time.monotonic()
        try:
            response = await client.with_options(timeout=timeout).chat.completions.create(**params)
        except openai.APITimeoutError:
            return None, f"timed out after {timeout:g} s"
        except openai.APIStatusError as exc:
            return None, f"HTTP {exc.status_code}: {str(exc)[:200]}"
        except openai.APIError as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
        choice = self._record_usage(response, start, sent, "summary")
        text = (choice.message.content or "").strip() if choice is not None else ""
        if not text:
            return None, "empty answer"
        if choice.finish_reason == "length":
            return None, f"answer cut off at max_tokens ({len(text)} characters)"
        if len(text) > limit:
            return None, f"oversized answer: {len(text)} characters, limit {limit}"
        return text, None

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
