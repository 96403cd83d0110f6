"""What a model-backed agent sends: the context budget, eliding, and compaction.

:func:`fit_to_budget` elides a conversation in stages (old tool outputs, then old
assistant text, then the kept tool results, then anything) and keeps it whole in shape.
Over hundreds of turns that is not enough: the tool calls and the elision markers alone
outgrow any budget. Compaction then replaces the conversation by a summary the model
writes of it (:data:`SUMMARY_INSTRUCTION`), followed by the most recent turns
(:func:`after_summary`); when no summary is to be had, :func:`drop_middle_turns` keeps
the request within budget by leaving out whole turns between the earliest and the
latest. Every compaction attempt is recorded as a :class:`Compaction`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COMPACTION_NAME",
    "Compaction",
    "after_summary",
    "drop_middle_turns",
    "fit_stage",
    "fit_to_budget",
    "message_chars",
    "summary_instruction",
    "summary_message",
]

# the ``name`` of the summary request and of the summary in the transcript
COMPACTION_NAME = "infragym_compaction"
# after a compaction the conversation takes at most this share of the budget, so it has
# room to grow before the next one
COMPACT_TARGET = 0.5
# when turns must be left out, the earliest ones kept may take this share of the room
KEEP_FIRST = 0.25

SUMMARY_INSTRUCTION = (
    "[infragym: context compaction] This conversation has outgrown the context budget. "
    "For this one reply, call no tool: write a summary of the episode so far from which you "
    "can carry on alone, because the conversation above will be replaced by the task's "
    "instructions, your summary and the last few turns. Carry over what any earlier summary "
    "above says, where it still holds. Use these headings:\n"
    "1. Task: the goal and the requirements that matter.\n"
    "2. Done: what you did and what you found out.\n"
    "3. State: the hosts, services and files as they are now (paths, ports, settings, "
    "values you will need).\n"
    "4. Open problems: what fails or is unverified, with the errors seen.\n"
    "5. Next steps: what you were about to do.\n"
    "Be concrete (exact paths, names, values) and brief: at most {limit} characters."
)
SUMMARY_HEADER = (
    "[infragym: context compaction {n}, at turn {turn}] The earlier conversation was "
    "replaced by this summary, which you wrote of it. The task's instructions are above; "
    "the most recent turns follow. Carry on from here.\n\n"
)


def message_chars(m: Mapping[str, Any]) -> int:
    """What a message costs against the budget: its text and its tool calls' arguments."""
    n = len(m["content"]) if isinstance(m.get("content"), str) else 0
    for tc in m.get("tool_calls") or []:
        fn = tc.get("function") or {}
        n += len(str(fn.get("name", ""))) + len(str(fn.get("arguments", "")))
    return n


def total_chars(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(message_chars(m) for m in messages)


def _elided(n: int, what: str) -> str:
    return f"[{what} of {n} characters elided to fit the context budget]"


def fit_to_budget(
    messages: list[dict[str, Any]], budget: int, keep_tool_results: int, head: int = 2
) -> list[dict[str, Any]]:
    """What to send: ``messages`` with the oldest tool outputs elided, then the oldest
    assistant text and tool-call arguments, then (last resort) the kept tool results cut,
    until the total is within ``budget`` characters. The first ``head`` messages (system
    prompt, instructions, and a compaction's summary) are never touched; ``messages``
    itself is not changed."""
    return fit_stage(messages, budget, keep_tool_results, head)[0]


def fit_stage(
    messages: list[dict[str, Any]],
    budget: int,
    keep_tool_results: int,
    head: int = 2,
    last_stage: int = 4,
) -> tuple[list[dict[str, Any]], int]:
    """:func:`fit_to_budget`, and the last stage it needed: 0 nothing elided, 1 old tool
    outputs, 2 old assistant messages, 3 the kept tool results, 4 any message (the total
    may still be over ``budget`` then: messages of 80 characters or less are not cut).
    It stops after ``last_stage``, within budget or not."""
    out = [dict(m) for m in messages]
    total = total_chars(out)
    if total <= budget:
        return out, 0
    tool_idx = [i for i, m in enumerate(out) if m.get("role") == "tool" and i >= head]
    kept = set(tool_idx[-keep_tool_results:]) if keep_tool_results else set()
    tail = min(kept) if kept else len(out) - 1
    old_tools = [i for i in tool_idx if i not in kept]
    old_asst = [i for i in range(head, tail) if out[i].get("role") == "assistant"]

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
            return out, 1
        shrink(i, "tool output")
    if total <= budget:
        return out, 1
    for i in old_asst:
        if total <= budget:
            return out, 2
        shrink(i, "assistant message")
    if total <= budget or last_stage <= 2:
        return out, 2
    for i in sorted(kept):
        if total <= budget:
            return out, 3
        m = out[i]
        text = m.get("content")
        if isinstance(text, str):
            over = total - budget
            keep = max(0, len(text) - over - 200)
            m["content"] = text[:keep] + "\n" + _elided(len(text) - keep, "tool output tail")
            total -= len(text) - len(m["content"])
    if total <= budget:
        return out, 3
    for i in range(head, len(out)):
        if total <= budget:
            break
        shrink(i, "message")
    return out, 4


def _turn_starts(messages: Sequence[Mapping[str, Any]], head: int) -> list[int]:
    """Where turns begin: each assistant message after ``head``. A turn is an assistant
    message and what answers it (tool results, a reminder), so cutting at a turn's start
    never separates a tool call from its result."""
    return [i for i in range(head, len(messages)) if messages[i].get("role") == "assistant"]


def drop_middle_turns(
    messages: list[dict[str, Any]], budget: int, head: int = 2
) -> list[dict[str, Any]]:
    """The hardest eliding: the first ``head`` messages, the earliest whole turns (what
    the episode found out first), a note of what was left out, and the latest whole turns
    (what it is doing), within ``budget``: the latest get up to ``1 - KEEP_FIRST`` of the
    room and always the last turn, the earliest what is left."""
    if total_chars(messages) <= budget:
        return messages
    starts = _turn_starts(messages, head)
    if not starts:
        return messages
    bounds = [head, *starts[1:], len(messages)]
    sizes = [total_chars(messages[a:b]) for a, b in itertools.pairwise(bounds)]
    room = budget - total_chars(messages[:head]) - 120  # the note
    late, used = len(sizes) - 1, sizes[-1]
    while late > 0 and used + sizes[late - 1] <= room * (1 - KEEP_FIRST):
        late -= 1
        used += sizes[late]
    early = 0
    while early < late and used + sizes[early] <= room:
        used += sizes[early]
        early += 1
    if early == late:
        return messages
    cut_from, cut_to = bounds[early], bounds[late]
    note = {
        "role": "user",
        "content": f"[{cut_to - cut_from} messages between the earliest and the latest turns "
        "left out to fit the context budget]",
    }
    return [*messages[:cut_from], note, *messages[cut_to:]]


def summary_instruction(limit: int) -> dict[str, Any]:
    """The request for a summary, the last message of a compaction's request."""
    return {"role": "user", "content": SUMMARY_INSTRUCTION.format(limit=limit)}


def summary_message(summary: str, n: int, turn: int) -> dict[str, Any]:
    """The summary as the conversation after a compaction carries it."""
    return {"role": "user", "content": SUMMARY_HEADER.format(n=n, turn=turn) + summary}


def after_summary(
    context: list[dict[str, Any]], summary: dict[str, Any], keep_turns: int, budget: int
) -> list[dict[str, Any]]:
    """The conversation that follows a compaction: system prompt, instructions, the
    summary, and the most recent of the last ``keep_turns`` turns that keep it within
    ``COMPACT_TARGET`` of ``budget`` (whole, as they were)."""
    base = [*context[:2], summary]
    room = int(budget * COMPACT_TARGET) - total_chars(base)
    starts = _turn_starts(context, 2)[-keep_turns:] if keep_turns else []
    cut = len(context)
    for s in reversed(starts):
        if total_chars(context[s:]) > room:
            break
        cut = s
    return [*base, *context[cut:]]


@dataclass(frozen=True)
class Compaction:
    """One compaction attempt of an episode, as the trajectory records it.

    ``at_message`` is where it happened in the transcript (:attr:`OpenAIAgent.messages`):
    a successful one put its request and the summary there (named
    :data:`COMPACTION_NAME`); a failed one put nothing there. ``reason`` says why one
    failed; the agent then elides harder (old assistant text, then the middle turns) and,
    while ``retry_at_turn`` is not None, tries again at that turn.
    """

    n: int
    turn: int
    at_message: int
    ok: bool
    reason: str | None
    request_chars: int
    summary_chars: int
    context_chars_before: int
    context_chars_after: int
    kept_messages: int
    retry_at_turn: int | None
