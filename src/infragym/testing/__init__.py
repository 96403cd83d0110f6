"""Test doubles at the platform's seams, for infragym's own tests and for task authors.

:class:`ScriptedModelServer` is a local OpenAI-compatible chat-completions server that
replays a script of replies (tool calls, text, empty answers, HTTP errors), so a
model-backed agent is tested over real HTTP without a model.

:func:`check_task` validates a task as a whole (layout, grader, every reference and probe
graded against the bands of its ``task.toml``), as Gymnasium's ``check_env`` checks an
environment; :func:`validate_tiers` is the same over many seeds, as a report.
"""

from ._check_task import TierReport, TierRow, check_task, static_problems, validate_tiers
from .model_server import (
    Call,
    Fail,
    RecordedRequest,
    Reply,
    ScriptedModelServer,
    ScriptEntry,
    by_turn,
    reference_script,
    with_summaries,
)

__all__ = [
    "Call",
    "Fail",
    "RecordedRequest",
    "Reply",
    "ScriptEntry",
    "ScriptedModelServer",
    "TierReport",
    "TierRow",
    "by_turn",
    "check_task",
    "reference_script",
    "static_problems",
    "validate_tiers",
    "with_summaries",
]
