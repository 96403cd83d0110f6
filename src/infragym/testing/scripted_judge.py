"""A scripted judge: deterministic rules stand in for the model behind the judge's HTTP.

Each rubric item may carry ``scripted`` rules in ``rubric.toml``; the judge policy reads
the real request (the ground truth and the quoted artefact out of the prompt the platform
built) and answers the JSON a model would, so tests and ``infragym judge check --scripted``
exercise the whole path: HTTP, prompt, quoting, validation, re-asking, evidence checks.

Rules (all that are given must hold; placeholders ``{host}`` is the first target of the
first ``apply`` fault event of the ground truth):

- ``all = [regex, ...]``: every one matches; ``any = [...]``: at least one; ``none``: none
- ``time_near = "apply" | "heal" | "restored"`` with ``tolerance_s``: a clock time
  ``HH:MM[:SS]`` in the text lies within the tolerance of that fault event
  (``clock_zero_utc`` + its ``time``), or of the truth's ``restored_s`` (the heal's time
  when it has none)
- ``number_near = {impact_key = relative tolerance}``: a number in the text is that close
  to ``impact[key]`` (a key ending in ``_s`` needs a duration: ``14 min``, ``830 s``)

The evidence is the shortest verbatim stretch (sentence, run of sentences, paragraph)
that meets the rule.
``gullible=True`` makes a judge that obeys instructions in the artefact: it marks every
item met, quoting the instruction where it has nothing better, as a model talked into it
might. Verification requests (each claim's quote alone) are answered by the same rules.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .._errors import ConfigError
from ..judge import JudgeRubric
from .model_server import Reply

__all__ = ["evaluate", "scripted_judge"]

_ARTEFACT = re.compile(r"<(artefact-[0-9a-f]{16})>\n(.*)\n</\1>", re.DOTALL)
_SENTENCE = re.compile(r"[^\n]*?(?:[.!?]+(?=\s)|\n|$)")
_CLOCK = re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])")
_DURATION = re.compile(
    r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|h)\b", re.IGNORECASE
)
_NUMBER = re.compile(r"(?<![\d:.,])\d[\d,]*(?:\.\d+)?(?![\d:])")
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}
_GULLIBLE = re.compile(
    r"grader|judge|full marks|pre-approved|ignore|satisf(?:y|ies) every|mark\w* .{0,30}met",
    re.IGNORECASE,
)


def _facts(truth: Mapping[str, Any]) -> dict[str, Any]:
    faults = [f for f in truth.get("faults", []) if isinstance(f, dict)]
    apply = next((f for f in faults if f.get("action") == "apply"), {})
    heal = next((f for f in faults if f.get("action") == "heal"), {})
    zero = datetime.fromisoformat(str(truth.get("clock_zero_utc", "1970-01-01T00:00:00+00:00")))
    base = zero.hour * 3600 + zero.minute * 60 + zero.second
    targets = apply.get("targets") or [""]
    return {
        "host": str(targets[0]),
        "apply": base + float(apply.get("time", 0.0)),
        "heal": base + float(heal.get("time", 0.0)),
        # the end of the outage as measured (a task may know it better than the heal event,
        # which may only be when the ticket was closed)
        "restored": base + float(truth.get("restored_s", heal.get("time", 0.0))),
        "impact": truth.get("impact", {}),
    }


def _spans_of(
    rule: Mapping[str, Any], text: str, facts: Mapping[str, Any]
) -> list[tuple[int, int]] | None:
    """The spans that show ``rule`` holds in ``text``, or None when it does not."""
    spans: list[tuple[int, int]] = []

    def pat(p: str) -> re.Pattern[str]:
        return re.compile(p.replace("{host}", re.escape(facts["host"])), re.IGNORECASE)

    for p in rule.get("all", []):
        m = pat(p).search(text)
        if m is None:
            return None
        spans.append(m.span())
    if rule.get("any"):
        found = [m for p in rule["any"] if (m := pat(p).search(text))]
        if not found:
            return None
        spans.append(min(found, key=lambda m: m.start()).span())
    for p in rule.get("none", []):
        if pat(p).search(text):
            return None
    if "time_near" in rule:
        want = facts[rule["time_near"]] % 86400
        tol = float(rule.get("tolerance_s", 120))
        hit = None
        for m in _CLOCK.finditer(text):
            t = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
            d = abs(t - want) % 86400
            if min(d, 86400 - d) <= tol:
                hit = m
                break
        if hit is None:
            return None
        spans.append(hit.span())
    if "number_near" in rule:
        hit = None
        for key, rel in rule["number_near"].items():
            v = float(facts["impact"].get(key, float("nan")))
            if key.endswith("_s"):
                cands = [
                    (float(m.group(1)) * _UNIT_S[_unit(m.group(2))], m)
                    for m in _DURATION.finditer(text)
                ]
            else:
                cands = [(float(m.group(0).replace(",", "")), m) for m in _NUMBER.finditer(text)]
            hit = next((m for x, m in cands if abs(x - v) <= float(rel) * abs(v)), None)
            if hit is not None:
                break
        if hit is None:
            return None
        spans.append(hit.span())
    return spans


def _unit(u: str) -> str:
    u = u.lower()
    for key in ("hour", "sec", "min"):
        if u.startswith(key):
            return key
    return u[0]


def _sentence_at(text: str, at: int) -> str:
    for m in _SENTENCE.finditer(text):
        if m.start() <= at < max(m.end(), m.start() + 1):
            return m.group(0).strip()
    return text.strip()


def _units(text: str) -> list[str]:
    """Sentences, then runs of two and three sentences, then paragraphs: where to look
    for the shortest quote that shows a rule."""
    sents = [m.group(0) for m in _SENTENCE.finditer(text) if m.group(0).strip()]
    spans = [m.span() for m in _SENTENCE.finditer(text) if m.group(0).strip()]
    runs = [
        text[spans[i][0] : spans[i + n - 1][1]] for n in (2, 3) for i in range(len(spans) - n + 1)
    ]
    return sents + runs + text.split("\n\n")


def evaluate(rule: Mapping[str, Any], text: str, truth: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``text`` meets ``rule`` against ``truth``, and the shortest verbatim
    stretch of it (a sentence, a few, a paragraph) that shows it. ``none`` rules read the
    whole text: a wrong claim anywhere fails the item."""
    facts = _facts(truth)
    if _spans_of(rule, text, facts) is None:
        return False, ""
    positive = {k: v for k, v in rule.items() if k != "none"}
    for unit in _units(text):
        if _spans_of(positive, unit, facts) is not None:
            return True, unit.strip()
    return True, text.strip()


def _truth_from(prompt: str) -> dict[str, Any]:
    at = prompt.index("GROUND TRUTH (JSON)\n") + len("GROUND TRUTH (JSON)\n")
    truth, _ = json.JSONDecoder().raw_decode(prompt, at)
    if not isinstance(truth, dict):
        raise ConfigError("the judge prompt's ground truth is not a JSON object")
    return truth


def scripted_judge(
    rubric: JudgeRubric, *, gullible: bool = False, fabricate: bool = False
) -> Callable[[dict[str, Any]], Reply]:
    """A :class:`ScriptedModelServer` entry that judges by ``rubric``'s scripted rules.
    ``fabricate``: every item is claimed met with a quote the artefact does not hold."""

    def answer(body: dict[str, Any]) -> Reply:
        msgs = [m for m in body.get("messages", []) if isinstance(m, dict)]
        system, prompt = str(msgs[0]["content"]), str(msgs[1]["content"])
        truth = _truth_from(prompt)
        if system.startswith("You check evidence"):
            return Reply.text(json.dumps({"items": _verify(rubric, prompt, truth)}))
        m = _ARTEFACT.search(prompt)
        text = html.unescape(m.group(2)) if m else ""
        trigger = _GULLIBLE.search(text) if gullible else None
        items = []
        for item in rubric.items:
            met, quote = evaluate(item.scripted, text, truth)
            if fabricate:
                met, quote = True, f"the postmortem fully covers {item.id}"
            elif trigger is not None and not met:
                met, quote = True, _sentence_at(text, trigger.start())
            items.append({"id": item.id, "met": met, "evidence": quote})
        flagged = trigger is not None
        return Reply.text(json.dumps({"items": items, "instructions_in_artefact": flagged}))

    return answer


_CLAIM = re.compile(r"^- id ([a-z0-9_-]+): .*?\n  quote: ", re.MULTILINE | re.DOTALL)


def _verify(rubric: JudgeRubric, prompt: str, truth: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for m in _CLAIM.finditer(prompt):
        quote, _ = json.JSONDecoder().raw_decode(prompt, m.end())
        met, _ = evaluate(rubric.item(m.group(1)).scripted, str(quote), truth)
        out.append({"id": m.group(1), "supported": met})
    return out
