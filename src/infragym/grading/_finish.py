"""The end of a grade: check results to a reward and an outcome with notes, and the same
reward again from a stored history (``infragym check``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..checkers import Checker, CheckResult, Verdict, check_all
from ..history import History
from ..rubric import RewardResult, Rubric
from ._context import GradeOutcome
from ._functional import functional_result, not_run

__all__ = ["finish", "functional_of", "recheck", "record_functional"]

NOTE_CHARS = 300


def finish(
    rubric: Rubric, results: Mapping[str, CheckResult], functional: float, notes: list[str]
) -> GradeOutcome:
    """Score ``results`` with ``rubric``; the outcome's notes are ``notes`` and then one
    line per criterion (verdict, score, the start of its explanation)."""
    reward: RewardResult = rubric.score(results)
    for c in reward.breakdown:
        notes.append(
            f"{c.name}: {c.verdict.value}, score {c.score:.3f}: {c.explanation[:NOTE_CHARS]}"
        )
    return GradeOutcome(reward=reward, functional=functional, notes=notes)


def record_functional(
    history: History, tests: Mapping[str, str | None], problem: str | None
) -> CheckResult:
    """The functional check of ``tests`` (each test's failure or None) or of a ``problem``
    that kept them from running, recorded in ``history.meta["functional"]`` so a stored
    history can be re-checked (:func:`functional_of`)."""
    history.meta["functional"] = {"tests": dict(tests), "problem": problem}
    return functional_result(tests, problem)


def functional_of(history: History) -> CheckResult:
    """The functional check a history recorded (:func:`record_functional`); UNKNOWN when it
    recorded none."""
    recorded = history.meta.get("functional")
    if isinstance(recorded, dict) and isinstance(recorded.get("tests"), dict):
        tests = {str(k): None if v is None else str(v) for k, v in recorded["tests"].items()}
        problem = recorded.get("problem")
        return functional_result(tests, None if problem is None else str(problem))
    return CheckResult(
        "functional",
        Verdict.UNKNOWN,
        0.0,
        "the history does not record the functional tests (meta['functional'])",
        judged=0,
    )


def gated_checks(rubric: Rubric, gate: str = "functional") -> list[str]:
    """The checks ``rubric`` reads besides ``gate``, in its order."""
    return list(dict.fromkeys(c.check_name for c in rubric.criteria if c.check_name != gate))


def recheck(
    history: History, checkers: Sequence[Checker] | Callable[[], Sequence[Checker]], rubric: Rubric
) -> RewardResult:
    """The reward of a stored history, offline, as a grade gave it: the functional gate as
    the history recorded it, then (when it passed) ``checkers`` on the history, then
    ``rubric``. A failed gate reports the other checks as not run, as grading does."""
    functional = functional_of(history)
    if functional.verdict is not Verdict.PASS:
        skipped = not_run("the functional contract failed", gated_checks(rubric))
        return rubric.score({"functional": functional, **skipped})
    chosen = checkers() if callable(checkers) else checkers
    results = check_all(list(chosen), history)
    results["functional"] = functional
    return rubric.score(results)
