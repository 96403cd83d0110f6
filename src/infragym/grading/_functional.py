"""A task's functional phase: named tests of the contract, each bounded in time and the
whole phase too, scored as the fraction passed. A system that fails any of them fails the
functional gate, and a grader then skips its robustness phase (``not_run``): a system
that breaks its contract earns nothing for robustness it cannot show."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .._errors import InfraGymError
from ..checkers import CheckResult, Verdict

__all__ = ["ExpectationFailed", "functional_result", "not_run", "run_tests"]

T = TypeVar("T")


class ExpectationFailed(InfraGymError):
    """A functional test's expectation was not met; the message says which."""


async def run_tests(
    tests: Sequence[tuple[str, Callable[[T], Awaitable[None]]]],
    arg: T,
    *,
    per_test_s: float,
    total_s: float,
) -> dict[str, str | None]:
    """Run ``tests`` in order with ``arg``; each test's failure message, or None when it
    passed. A test past its time fails; the tests left when ``total_s`` is spent are
    reported as not run."""
    out: dict[str, str | None] = {}
    deadline = time.monotonic() + total_s
    for name, fn in tests:
        left = min(per_test_s, deadline - time.monotonic())
        if left <= 0:
            out[name] = f"not run: the functional tests took more than {total_s:g} s"
            continue
        try:
            await asyncio.wait_for(fn(arg), timeout=left)
            out[name] = None
        except ExpectationFailed as exc:
            out[name] = str(exc)
        except TimeoutError:
            out[name] = f"the test did not finish within {left:.1f} s"
    return out


def functional_result(results: Mapping[str, str | None], problem: str | None = None) -> CheckResult:
    """The ``functional`` check: the fraction of ``results`` that passed, PASS only when
    all did. ``problem`` (e.g. the system never came up) fails it with score 0."""
    if problem is not None:
        return CheckResult("functional", Verdict.FAIL, 0.0, problem, {"passed": 0}, judged=0)
    if not results:
        return CheckResult(
            "functional", Verdict.FAIL, 0.0, "no functional test ran", {"passed": 0}, judged=0
        )
    passed = [n for n, err in results.items() if err is None]
    failed = {n: err for n, err in results.items() if err is not None}
    metrics: dict[str, Any] = {"tests": len(results), "passed": len(passed)}
    metrics.update({f"test.{n}": err is None for n, err in results.items()})
    if failed:
        shown = "; ".join(f"{n}: {err}" for n, err in list(failed.items())[:3])
        return CheckResult(
            "functional",
            Verdict.FAIL,
            len(passed) / len(results),
            f"{len(failed)} of {len(results)} functional tests failed: {shown}",
            metrics,
            judged=len(results),
        )
    return CheckResult(
        "functional",
        Verdict.PASS,
        1.0,
        f"all {len(results)} functional tests passed",
        metrics,
        judged=len(results),
    )


def not_run(reason: str, names: Iterable[str]) -> dict[str, CheckResult]:
    """UNKNOWN results for checks that did not run, and why (never a made-up FAIL)."""
    return {
        name: CheckResult(name, Verdict.UNKNOWN, 0.0, f"not run: {reason}", judged=0)
        for name in names
    }
