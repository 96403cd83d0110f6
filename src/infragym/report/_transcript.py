"""An episode's transcript as HTML: messages in order, tool calls and their outputs folded.

Everything here is the agent's (or its tools') text: escaped by :func:`el`, never
interpreted. A message longer than :data:`MAX_SHOWN` characters is cut with a visible
marker (``trajectories.jsonl`` has it whole).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._html import Html, el, join

if TYPE_CHECKING:
    from ..runner import Trajectory

MAX_SHOWN = 20_000
LONG = 400  # a user or system message longer than this is folded
COMPACTION_NAME = "infragym_compaction"  # as infragym.agent names a compaction's messages


def _text(content: Any) -> str:
    """A message's content as text (a list of parts: their text joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
            else:
                parts.append(json.dumps(p, ensure_ascii=False))
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False)


def _shown(text: str) -> Html:
    if len(text) <= MAX_SHOWN:
        return el("pre", text)
    cut = len(text) - MAX_SHOWN
    return el(
        "pre",
        text[:MAX_SHOWN],
        el("span", f"\n… {cut:,} more characters (trajectories.jsonl has them)", class_="cut"),
    )


def _first_line(text: str, limit: int = 110) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "(empty)"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _folded(summary: str, body: Html, cls: str) -> Html:
    return el("details", el("summary", summary), body, class_=cls)


def _arguments(raw: Any) -> tuple[str, str]:
    """The arguments pretty-printed, and a one-line summary (the command, the path...)."""
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return str(raw), _first_line(str(raw))
    if isinstance(args, dict):
        for key in ("command", "path", "host"):
            if isinstance(args.get(key), str):
                return json.dumps(args, indent=2, ensure_ascii=False), _first_line(args[key])
        return json.dumps(args, indent=2, ensure_ascii=False), _first_line(json.dumps(args))
    return json.dumps(args, indent=2, ensure_ascii=False), _first_line(json.dumps(args))


def _message(m: dict[str, Any], names: dict[str, str]) -> Html:
    role = str(m.get("role", "?"))
    text = _text(m.get("content"))
    if m.get("name") == COMPACTION_NAME:
        what = "summary" if role == "assistant" else "summary request"
        head = f"compaction: {what}, {len(text):,} chars: {_first_line(text)}"
        return _folded(head, _shown(text), f"msg compaction {role}")
    if role == "tool":
        name = names.get(str(m.get("tool_call_id")), "tool")
        lines = text.count("\n") + 1 if text else 0
        head = f"← {name} output, {lines} line(s), {len(text):,} chars: {_first_line(text)}"
        return _folded(head, _shown(text), "msg tool")
    if role == "assistant":
        parts: list[Html] = []
        if text:
            parts.append(_shown(text))
        for call in m.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            fn = fn if isinstance(fn, dict) else {}
            name = str(fn.get("name", "?"))
            if isinstance(call, dict) and call.get("id") is not None:
                names[str(call["id"])] = name
            pretty, short = _arguments(fn.get("arguments"))
            parts.append(_folded(f"→ {name}: {short}", _shown(pretty), "call"))
        return el("div", el("div", "assistant", class_="role"), *parts, class_="msg assistant")
    if len(text) > LONG:
        head = f"{role}: {len(text):,} chars: {_first_line(text)}"
        return _folded(head, _shown(text), f"msg {role}")
    return el("div", el("div", role, class_="role"), _shown(text), class_=f"msg {role}")


def transcript_html(trajectory: Trajectory | None) -> Html:
    """The whole transcript, folded under one summary line."""
    if trajectory is None or not trajectory.messages:
        return el("p", "no transcript recorded", class_="muted")
    names: dict[str, str] = {}
    failed: dict[int, list[Html]] = {}
    for c in trajectory.compactions:
        if not c.get("ok"):
            retry = c.get("retry_at_turn")
            then = f"retry at turn {retry}" if retry is not None else "no more attempts"
            note = (
                f"compaction {c.get('n')} at turn {c.get('turn')} failed: {c.get('reason')}; "
                f"eliding harder instead, {then}"
            )
            failed.setdefault(int(c.get("at_message", 0)), []).append(
                el("div", el("div", note, class_="role"), class_="msg compaction failed")
            )
    parts: list[Html] = []
    for i, m in enumerate(trajectory.messages):
        parts.extend(failed.pop(i, []))
        parts.append(_message(dict(m), names))
    parts.extend(p for notes in failed.values() for p in notes)
    body = join(parts)
    calls = sum(len(m.get("tool_calls") or []) for m in trajectory.messages)
    summary = f"transcript: {len(trajectory.messages)} messages, {calls} tool call(s)"
    if trajectory.compactions:
        ok = sum(1 for c in trajectory.compactions if c.get("ok"))
        summary += f", {ok} of {len(trajectory.compactions)} compaction(s) done"
    return el("details", el("summary", summary), body, class_="transcript")
