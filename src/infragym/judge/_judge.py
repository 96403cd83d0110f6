"""The judge: a model scores an artefact item by item; the platform decides what counts.

A judgement is the weighted share of rubric items met. It is **unknown** (never 0, never
1) when there is no judge, when its server cannot be used (timeouts, HTTP errors after the
SDK's retries), or when every one of ``attempts`` answers is malformed; the rubric leaves
an unknown judged criterion out of the reward (:func:`judged_criterion`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import openai
from openai import AsyncOpenAI

from .._errors import InfraGymError
from ..checkers import CheckResult, Verdict
from ..rubric import Criterion
from ._config import ENV_MODEL, JudgeConfig
from ._items import JudgeRubric
from ._prompt import (
    AnswerError,
    build_messages,
    build_verify_messages,
    evidence_found,
    parse_answer,
    parse_verify,
)

__all__ = ["ItemVerdict", "Judge", "Judgement", "judged_criterion"]

T = TypeVar("T")

NO_JUDGE = (
    f"no judge is configured (set {ENV_MODEL} and INFRAGYM_JUDGE_BASE_URL or "
    "INFRAGYM_JUDGE_API_KEY): the artefact was not judged"
)


@dataclass(frozen=True)
class ItemVerdict:
    """One item: what the judge claimed, and whether it counts. ``met`` is False when the
    claim was voided (``note`` says why) and None when the judgement is unknown."""

    id: str
    weight: float
    met: bool | None
    claimed: bool | None
    evidence: str
    note: str = ""


@dataclass(frozen=True)
class Judgement:
    """The judge's verdict on one artefact; ``score`` None means unknown (``reason``)."""

    items: tuple[ItemVerdict, ...]
    score: float | None
    reason: str
    requests: int = 0  # chat completions sent (answers, re-asks, verification)
    removed: int = 0  # instruction-like passages removed from the artefact
    flagged: bool = False  # the judge reported instructions in the artefact
    voided: int = 0  # "met" claims without a verbatim, non-instruction evidence quote

    @property
    def unknown(self) -> bool:
        return self.score is None

    def check_result(self, name: str, pass_share: float = 0.75) -> CheckResult:
        """As a check result a rubric criterion scores: ``score`` is the weighted share of
        items met; pass when it is at least ``pass_share``; unknown stays unknown."""
        metrics: dict[str, float | int | str | bool | None] = {
            "requests": self.requests,
            "instruction_like_removed": self.removed,
            "judge_flagged_instructions": self.flagged,
            "voided": self.voided,
        }
        for it in self.items:
            metrics[f"item:{it.id}"] = it.met
        if self.score is None:
            return CheckResult(name, Verdict.UNKNOWN, 0.0, self.reason, metrics, judged=None)
        verdict = Verdict.PASS if self.score >= pass_share else Verdict.FAIL
        return CheckResult(name, verdict, self.score, self.reason, metrics, judged=len(self.items))


def judged_criterion(name: str, weight: float = 1.0, *, check: str | None = None) -> Criterion:
    """A rubric criterion for a judged check: its score is the share of items met, and an
    unknown judgement (no judge, judge unusable) is left out of the reward, not scored."""
    return Criterion(
        name,
        weight=weight,
        check=check,
        exclude_unknown=True,
        min_judged=1,
        description="scored by a model judge; left out of the reward when unknown",
    )


@dataclass(frozen=True)
class Judge:
    """Scores artefacts against ``rubric`` with the model of ``config`` (None: no judge,
    every judgement unknown). Each judgement is its own conversation: the judge never sees
    the agent's conversation, only the artefact, the ground truth and the rubric."""

    rubric: JudgeRubric
    config: JudgeConfig | None

    async def judge(self, artefact: str, ground_truth: Mapping[str, Any]) -> Judgement:
        if self.config is None:
            return self._unknown(NO_JUDGE, 0)
        cfg = self.config
        messages, shown = build_messages(self.rubric, artefact, ground_truth)
        async with AsyncOpenAI(
            api_key=cfg.key,
            base_url=cfg.base_url,
            max_retries=cfg.max_retries,
            timeout=cfg.request_timeout_s,
        ) as client:
            ask = _Asker(cfg, client)
            try:
                answer = await ask(
                    messages, lambda t: parse_answer(t, self.rubric), self.rubric.ids
                )
                judged = self._score(answer.met, answer.evidence, shown.text)
                claims = {r.id: r.evidence for r in judged if r.met}
                if cfg.verify and claims:
                    ids = list(claims)
                    vm = build_verify_messages(self.rubric, claims, ground_truth)
                    supported = await ask(vm, lambda t: parse_verify(t, ids), ids)
                    judged = [
                        replace(r, met=False, note="voided: the quote alone does not show it")
                        if r.met and not supported[r.id]
                        else r
                        for r in judged
                    ]
            except JudgeUnusable as exc:
                return self._unknown(str(exc), ask.requests, shown.removed)
        voided = sum(1 for r in judged if r.claimed and not r.met)
        total = math.fsum(r.weight for r in judged)
        score = min(1.0, math.fsum(r.weight for r in judged if r.met) / total)
        got = [r.id for r in judged if r.met]
        reason = (
            f"{len(got)} of {len(judged)} items met ({', '.join(got) or 'none'})"
            + (f"; {voided} claim(s) voided" if voided else "")
            + (f"; {shown.removed} instruction-like passage(s) removed" if shown.removed else "")
        )
        return Judgement(
            tuple(judged), score, reason, ask.requests, shown.removed, answer.flagged, voided
        )

    def _unknown(self, reason: str, requests: int, removed: int = 0) -> Judgement:
        items = tuple(ItemVerdict(i.id, i.weight, None, None, "") for i in self.rubric.items)
        return Judgement(items, None, reason, requests, removed)

    def _score(
        self, met: Mapping[str, bool], evidence: Mapping[str, str], shown: str
    ) -> list[ItemVerdict]:
        rows = []
        for item in self.rubric.items:
            claimed, ev = met[item.id], evidence[item.id]
            why = evidence_found(ev, shown) if claimed else None
            note = f"voided: {why}" if why else ""
            rows.append(ItemVerdict(item.id, item.weight, claimed and not why, claimed, ev, note))
        return rows

    async def check(
        self, name: str, artefact: str, ground_truth: Mapping[str, Any], pass_share: float = 0.75
    ) -> CheckResult:
        """:meth:`judge` as a check result for a rubric (see :func:`judged_criterion`)."""
        return (await self.judge(artefact, ground_truth)).check_result(name, pass_share)


class JudgeUnusable(InfraGymError):
    """The judge's server failed, or every attempt gave a malformed answer."""


class _Asker:
    """One judge request with bounded re-asking: a malformed answer is sent back with what
    is wrong, ``attempts`` times at most; an HTTP failure (after the SDK's retries) ends it."""

    def __init__(self, cfg: JudgeConfig, client: AsyncOpenAI) -> None:
        self.cfg, self.client, self.requests = cfg, client, 0
        self.params: dict[str, Any] = {"model": cfg.model}
        for key in ("temperature", "max_tokens", "seed"):
            if getattr(cfg, key) is not None:
                self.params[key] = getattr(cfg, key)
        if cfg.json_mode:
            self.params["response_format"] = {"type": "json_object"}
        if cfg.extra_body:
            self.params["extra_body"] = dict(cfg.extra_body)

    async def __call__(
        self, messages: list[dict[str, str]], parse: Callable[[str | None], T], ids: Sequence[str]
    ) -> T:
        problem = ""
        for _ in range(self.cfg.attempts):
            self.requests += 1
            try:
                response = await self.client.chat.completions.create(
                    messages=messages,  # type: ignore[arg-type]
                    **self.params,
                )
            except openai.APIError as exc:
                raise JudgeUnusable(_explain(self.cfg, exc)) from None
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice else None
            try:
                return parse(text)
            except AnswerError as exc:
                problem = str(exc)
            messages = [
                *messages,
                {"role": "assistant", "content": text or ""},
                {
                    "role": "user",
                    "content": f"Your answer could not be used: {problem}. Answer again with "
                    f"only the JSON object, one entry for each of: {', '.join(ids)}.",
                },
            ]
        raise JudgeUnusable(
            f"the judge gave no usable answer in {self.cfg.attempts} attempts (last: {problem})"
        )


def _explain(cfg: JudgeConfig, exc: openai.APIError) -> str:
    status = getattr(exc, "status_code", None)
    detail = str(exc)[:200]
    if isinstance(exc, openai.APITimeoutError):
        return (
            f"{cfg.where} did not answer within {cfg.request_timeout_s:g} s "
            f"(after {cfg.max_retries} retries)"
        )
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return f"{cfg.where} rejected the API key ({status}): set INFRAGYM_JUDGE_API_KEY"
    if isinstance(exc, openai.NotFoundError):
        return f"{cfg.where} does not serve model {cfg.model!r} (404): set {ENV_MODEL}"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach {cfg.where} ({detail}): set INFRAGYM_JUDGE_BASE_URL"
    return f"{cfg.where} failed ({status}) after {cfg.max_retries} retries: {detail}"
