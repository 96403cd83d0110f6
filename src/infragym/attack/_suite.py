"""Attacks, their outcomes, a suite's run and its score.

An :class:`Attack` is a named, severity-weighted function of a :class:`~._client.Peer`
that says whether the attack *succeeded*, with the evidence (the secret's bytes in a body,
``+PONG`` from redis, an accepted TLS 1.0 handshake). "Blocked" always means the attack
failed: a ``200`` that does not carry what the attack was after is blocked, one that does
is not, and a probe that could not be judged (it raised) counts as not blocked. Each attack
runs from a freshly drawn address, so a service that blocks the addresses it saw attacking
blocks nothing of the next one.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..checkers import CheckResult, Verdict
from ..history import History
from ._client import Peer

Severity = Literal["critical", "high", "medium", "low"]
WEIGHTS: Mapping[str, float] = {"critical": 4.0, "high": 3.0, "medium": 2.0, "low": 1.0}
META_KEY = "attacks"


@dataclass(frozen=True)
class Outcome:
    """Whether an attack succeeded, and what shows it (or why it failed)."""

    succeeded: bool
    evidence: str


@dataclass(frozen=True)
class Attack:
    """One probe of an attack suite: ``run`` is called in the attacker's namespace after a
    fresh address was drawn (:meth:`Peer.fresh`) and may draw more."""

    name: str
    severity: Severity
    run: Callable[[Peer], Outcome]
    what: str = ""


@dataclass(frozen=True)
class AttackResult:
    name: str
    severity: str
    succeeded: bool
    evidence: str
    source: str
    seconds: float


def run_attack(attack: Attack, peer: Peer) -> AttackResult:
    """Run one attack from a fresh address (inside ``peer``'s namespace). A probe that
    raises is recorded as succeeded: nothing showed the attack failed."""
    source = peer.fresh()
    t0 = time.monotonic()
    try:
        out = attack.run(peer)
    except Exception as exc:
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        out = Outcome(True, f"the probe could not judge the attack ({tb}): not shown blocked")
    return AttackResult(
        attack.name, attack.severity, out.succeeded, out.evidence[:300], source,
        round(time.monotonic() - t0, 3),
    )  # fmt: skip


def run_suite(attacks: Sequence[Attack], peer: Peer) -> list[AttackResult]:
    """Every attack, one after another, each from its own address (blocking: runs in a
    thread of the attacker's namespace)."""
    return peer.run(lambda: [run_attack(a, peer) for a in attacks])


def record(history: History, results: Sequence[AttackResult]) -> None:
    """Keep the results in the history (``meta["attacks"]``) so a stored history can be
    re-checked (:class:`AttackSuite`)."""
    history.meta[META_KEY] = [asdict(r) for r in results]


def recorded(history: History) -> list[AttackResult]:
    return [AttackResult(**r) for r in history.meta.get(META_KEY) or []]


def blocked_share(results: Sequence[AttackResult]) -> float:
    """The share of the attacks blocked, weighted by severity (:data:`WEIGHTS`)."""
    total = sum(WEIGHTS[r.severity] for r in results)
    return sum(WEIGHTS[r.severity] for r in results if not r.succeeded) / total if total else 0.0


@dataclass(frozen=True)
class AttackSuite:
    """Checker of the recorded attacks. ``severities`` limits it to those (the critical
    ones, say, for a gate that caps the reward when any succeeded); its score is the
    weighted share blocked, its verdict pass only when every one was."""

    name: str = "attacks"
    severities: tuple[str, ...] = ("critical", "high", "medium", "low")

    def check(self, history: History) -> CheckResult:
        results = [r for r in recorded(history) if r.severity in self.severities]
        if not results:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no attacks recorded", judged=0)
        won = [r for r in results if r.succeeded]
        metrics: dict[str, Any] = {f"{r.name}.succeeded": r.succeeded for r in results}
        shown = "; ".join(f"{r.name} ({r.severity}): {r.evidence[:120]}" for r in won[:6])
        return CheckResult(
            self.name, Verdict.FAIL if won else Verdict.PASS, blocked_share(results),
            f"{len(results) - len(won)} of {len(results)} attacks blocked"
            + (f"; succeeded: {shown}" if won else ""),
            metrics, judged=len(results),
        )  # fmt: skip
