"""A model judge for what scripts cannot grade (a postmortem, a design note).

A grader scores an artefact with a :class:`Judge` (a :class:`JudgeRubric` of concrete
items and a :class:`JudgeConfig` naming any OpenAI-compatible endpoint) against the hidden
ground truth, and feeds the result to a rubric criterion::

    judge = Judge(JudgeRubric.load(builtin_set("disk-full-postmortem") / "rubric.toml"),
                  JudgeConfig.from_env())          # None when INFRAGYM_JUDGE_MODEL is unset
    truth = incident_truth(history.faults, kinds=["disk-full"], root_cause=..., impact=...,
                           clock_zero=...)
    result = await judge.check("postmortem", text, truth)
    Rubric([..., judged_criterion("postmortem", weight=2)])

The criterion's score is the weighted share of items met. With no judge, an unreachable
one, or one that keeps answering malformed JSON, it is unknown and left out of the reward
(``RewardResult.excluded``), never a made-up 0 or 1. The artefact is hostile data: see
``_prompt`` for how it is quoted, what is removed, and which "met" claims are believed.
:func:`check_set` measures a judge's agreement with a :class:`LabelledSet`.
"""

from ._config import JudgeConfig
from ._items import JudgeItem, JudgeRubric
from ._judge import ItemVerdict, Judge, Judgement, judged_criterion
from ._labelled import (
    Agreement,
    Labelled,
    LabelledSet,
    SetAgreement,
    builtin_set,
    builtin_sets,
    check_set,
)
from ._prompt import build_messages, instruction_like, redact
from ._truth import incident_truth

__all__ = [
    "Agreement",
    "ItemVerdict",
    "Judge",
    "JudgeConfig",
    "JudgeItem",
    "JudgeRubric",
    "Judgement",
    "Labelled",
    "LabelledSet",
    "SetAgreement",
    "build_messages",
    "builtin_set",
    "builtin_sets",
    "check_set",
    "incident_truth",
    "instruction_like",
    "judged_criterion",
    "redact",
]
