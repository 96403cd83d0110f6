"""Running several checkers over one history, keyed for a rubric."""

from __future__ import annotations

from collections.abc import Iterable

from .._errors import ConfigError
from ..history import History
from ._base import Checker, CheckResult, run_checker


def check_all(checkers: Iterable[Checker], history: History) -> dict[str, CheckResult]:
    """Every checker's result by name; a crashing checker gives unknown, not an exception.

    Names must be unique because a rubric looks results up by name: two ``Latency``
    checkers need distinct ``name=`` values.
    """
    out: dict[str, CheckResult] = {}
    for checker in checkers:
        if checker.name in out:
            raise ConfigError(
                f"two checkers are named {checker.name!r}; give each a distinct name= so a "
                "rubric can tell their results apart"
            )
        out[checker.name] = run_checker(checker, history)
    return out
