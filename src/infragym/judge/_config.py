"""Where the judge's model is: configured like the agent's model, but on its own.

The judge never falls back to the agent's settings (``INFRAGYM_MODEL``, ``OPENAI_*``): a
run with an agent model and no judge has no judge, and its judged criteria are unknown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError

__all__ = ["JudgeConfig"]

ENV_MODEL = "INFRAGYM_JUDGE_MODEL"
ENV_BASE_URL = "INFRAGYM_JUDGE_BASE_URL"
ENV_API_KEY = "INFRAGYM_JUDGE_API_KEY"


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


@dataclass(frozen=True)
class JudgeConfig:
    """A model behind any OpenAI-compatible chat-completions endpoint, used as a judge.

    ``model``, ``base_url`` and ``api_key`` mirror :class:`~infragym.agent.OpenAIAgent`'s;
    :meth:`from_env` reads them from ``INFRAGYM_JUDGE_MODEL``, ``INFRAGYM_JUDGE_BASE_URL``
    and ``INFRAGYM_JUDGE_API_KEY``. ``max_retries`` is the SDK's retries of 429/5xx and
    connection errors per request; ``attempts`` is how many answers the judge may give
    for one artefact before malformed output makes the verdict unknown. ``json_mode``
    asks for ``response_format={"type": "json_object"}`` (vLLM, SGLang and OpenAI honour
    it; turn it off for a server that rejects it). Temperature 0 by default: a judge
    should not draw its verdicts at random. ``verify`` sends each surviving "met" claim's
    quote, without the rest of the artefact, to a second fresh conversation that must
    agree the quote alone meets the item (one more request per judgement).
    """

    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float | None = 0.0
    max_tokens: int | None = 2000
    seed: int | None = 0
    extra_body: Mapping[str, Any] | None = None
    max_retries: int = 2
    attempts: int = 3
    request_timeout_s: float = 120.0
    json_mode: bool = True
    verify: bool = True

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError(f"a judge needs a model: set {ENV_MODEL} or pass model=...")
        if self.api_key is None and self.base_url is None:
            raise ConfigError(
                f"the judge has no API key: set {ENV_API_KEY}, or {ENV_BASE_URL} for a "
                "local server (the agent's OPENAI_API_KEY is not used for the judge)"
            )
        if self.max_retries < 0 or self.attempts < 1:
            raise ConfigError(
                f"judge max_retries must be >= 0 and attempts >= 1 (got {self.max_retries}, "
                f"{self.attempts})"
            )
        if not self.request_timeout_s > 0:
            raise ConfigError(
                f"judge request_timeout_s must be positive, not {self.request_timeout_s}"
            )

    @property
    def key(self) -> str:
        """The key sent: local servers (vLLM, SGLang) accept any unless told otherwise."""
        return self.api_key if self.api_key is not None else "EMPTY"

    @property
    def where(self) -> str:
        return f"the judge's model server at {self.base_url or 'the default OpenAI endpoint'}"

    @classmethod
    def from_env(cls, **overrides: Any) -> JudgeConfig | None:
        """The judge the environment configures, or None when ``INFRAGYM_JUDGE_MODEL`` is
        unset: no judge, so judged criteria are unknown (never a made-up score)."""
        model = overrides.pop("model", None) or _env(ENV_MODEL)
        if not model:
            return None
        return cls(
            model=model,
            base_url=overrides.pop("base_url", None) or _env(ENV_BASE_URL),
            api_key=overrides.pop("api_key", None) or _env(ENV_API_KEY),
            **overrides,
        )
