"""Checkers: pure functions of a history giving pass / fail / unknown."""

from ._base import Checker, CheckResult, Verdict, run_checker

__all__ = ["CheckResult", "Checker", "Verdict", "run_checker"]
