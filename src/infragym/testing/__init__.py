"""Test doubles at the platform's seams, for infragym's own tests and for task authors.

:class:`ScriptedModelServer` is a local OpenAI-compatible chat-completions server that
replays a script of replies (tool calls, text, empty answers, HTTP errors), so a
model-backed agent is tested over real HTTP without a model.
"""

from .model_server import (
    Call,
    Fail,
    RecordedRequest,
    Reply,
    ScriptedModelServer,
    ScriptEntry,
    by_turn,
    reference_script,
)

__all__ = [
    "Call",
    "Fail",
    "RecordedRequest",
    "Reply",
    "ScriptEntry",
    "ScriptedModelServer",
    "by_turn",
    "reference_script",
]
