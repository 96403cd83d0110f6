"""Rubrics: weighted criteria with gates that turn check results into a reward in [0, 1].

A grader runs checkers (see :mod:`infragym.checkers`), then scores their results::

    rubric = Rubric([
        Criterion("linearizable", gate=True, weight=0),   # the functional contract
        Criterion("lost-writes", weight=3),
        Criterion("availability", weight=2),
        Criterion("latency", weight=1),
    ])
    reward = rubric.score(check_all(checkers, history))   # RewardResult, persisted as JSON

Stock score functions and gates (:func:`all_or_nothing`, :func:`linear`, :func:`at_least`,
:func:`at_most`, :func:`gate`) cover what most criteria need.
"""

from ._criterion import Criterion, ScoreFn
from ._result import CriterionScore, RewardResult
from ._rubric import Rubric
from ._scores import all_or_nothing, at_least, at_most, gate, linear, metric_value

__all__ = [
    "Criterion",
    "CriterionScore",
    "RewardResult",
    "Rubric",
    "ScoreFn",
    "all_or_nothing",
    "at_least",
    "at_most",
    "gate",
    "linear",
    "metric_value",
]
