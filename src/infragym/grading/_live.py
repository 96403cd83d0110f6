"""Grading a live episode (``mode = "operate"``): what a phase's grader gets, the service
level of the whole episode against its error budget, and the episode's reward.

A phase grader (``async def grade_<phase>(ctx: LiveContext)``) runs on the live production
cluster the agent works on, as the agent left it at the phase's end: it may read files of
the hosts, ask the service over HTTP and read the history the background workload has
recorded since the episode began. It returns a score in [0, 1], a
:class:`~infragym.rubric.RewardResult` or a :class:`GradeOutcome`; :func:`phase_score`
turns each into one :class:`PhaseScore`. The final ``audit(ctx)`` is a grader of the same
kind, run once after the last phase.

The episode's reward (:func:`episode_reward`) is the weighted sum of three parts, each in
[0, 1]: the phases' rewards (weighted by each phase's ``weight``), the service level of the
whole history (:func:`service_level`) and the audit. An outage the agent causes spends
the error budget exactly as one an incident causes: the history does not know who did it.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkers import CheckResult, LostWrites
from ..history import Clock, History, Operation
from ..rubric import RewardResult
from ..sandbox import Cluster
from ..tasks import Variant
from ..workload import final_read_stream, parse_targets, read_back
from ._context import GradeOutcome
from ._probe import HttpProbe

__all__ = [
    "EpisodeReward",
    "HostMetrics",
    "LiveContext",
    "PhaseScore",
    "ServiceLevel",
    "episode_reward",
    "host_metrics",
    "phase_score",
    "phase_shares",
    "service_level",
]


@dataclass
class LiveContext:
    """What a live phase's grader (or the audit) gets. ``cluster`` is the production
    cluster the agent works on (never rebuilt); ``urls`` each host's service URL;
    ``history`` everything the background workload and the nemesis recorded since reset
    (on ``clock``); ``phase_started`` the clock time the phase opened; ``summary`` what the
    agent said when it ended the phase (empty at a limit); ``env`` each host's contract
    environment. ``variant`` and ``seed`` are the episode's."""

    task: str
    seed: int
    variant: Variant
    phase: str
    summary: str
    cluster: Cluster
    urls: Mapping[str, str]
    history: History
    clock: Clock
    phase_started: float
    artifacts_dir: Path
    budget_s: float
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda msg: None

    async def run(
        self, host: str, command: str, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``command`` (bash) on ``host`` as the service's user, with the host's
        contract environment; it and its children die at ``timeout``."""
        h = self.cluster.host(host)
        argv = ["/bin/bash", "-c", command]
        return await asyncio.to_thread(
            h.run, argv, timeout=timeout, env=dict(self.env.get(host, {})), cwd="/srv/app"
        )

    async def request(
        self, host: str, path: str, method: str = "GET", body: bytes | None = None,
        timeout: float = 2.0,
    ) -> tuple[int, bytes]:  # fmt: skip
        """One HTTP request to ``host``'s service from the client namespace: (status,
        body); status 0 when it did not answer (refused, reset, timed out)."""

        async def ask() -> tuple[int, bytes]:
            async with HttpProbe.open(self.urls, request_s=timeout) as probe:
                try:
                    return await probe.request(method, host, path, body)
                except Exception:
                    return 0, b""

        return await asyncio.to_thread(self.cluster.run_client, ask)

    async def lost_writes(
        self, hosts: Sequence[str] | None = None, settle_s: float = 0.0, timeout: float = 2.0
    ) -> CheckResult:
        """Read every key the workload wrote on each of ``hosts`` (default: every host of
        the cluster now, those a phase added included), into the history, and check that
        no acknowledged write was lost (:class:`~infragym.checkers.LostWrites`: pass, fail
        with witnesses, or unknown when nothing was acknowledged or a write is left
        unjudged). For the audit of a task whose workload writes (``workload = "kv"``):
        the clients have stopped by then, so every acknowledged write is judged."""
        names = list(self.cluster.names if hosts is None else hosts)
        unknown = [h for h in names if h not in self.urls]
        if unknown or not names:
            raise ValueError(f"lost_writes: no such hosts {unknown or names} of this episode")
        targets = parse_targets({h: self.urls[h] for h in names})
        stream = final_read_stream(self.history, targets, timeout=timeout)

        async def read() -> None:
            await read_back(self.history, self.clock, stream, targets)

        await asyncio.to_thread(self.cluster.run_client, read)
        return LostWrites(settle_s).check(self.history)

    def operations(self, since: float | None = None) -> list[Operation]:
        """The workload's operations so far (invoked at or after ``since``, if given)."""
        ops = self.history.operations()
        return ops if since is None else [op for op in ops if op.invoke >= since]

    def faults(self) -> list[dict[str, Any]]:
        """The nemesis's timeline so far: every apply and heal, as recorded."""
        return [
            {"time": e.time, "fault": e.fault, "action": e.action.value, "label": e.label,
             "targets": list(e.targets), "detail": dict(e.detail)}
            for e in self.history.faults
        ]  # fmt: skip


@dataclass(frozen=True)
class PhaseScore:
    """A phase's (or the audit's) reward in [0, 1], its breakdown and notes. ``unknown``:
    the phase could not be graded (a judged artefact with no judge configured): it is
    left out of the episode's reward, its weight with it, and ``reward`` is 0."""

    reward: float
    breakdown: Mapping[str, float] = field(default_factory=dict)
    notes: Sequence[str] = ()
    unknown: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {"reward": self.reward, "breakdown": dict(self.breakdown), "notes": list(self.notes)}
        if self.unknown:
            out["unknown"] = True
        return out


def phase_score(value: object, what: str) -> PhaseScore:
    """What a phase grader returned as a PhaseScore; anything else is a grader bug
    (a TypeError or ValueError naming ``what``)."""
    if isinstance(value, GradeOutcome):
        r = value.reward
        return PhaseScore(r.reward, {c.name: c.score for c in r.breakdown}, list(value.notes))
    if isinstance(value, RewardResult):
        return PhaseScore(value.reward, {c.name: c.score for c in value.breakdown})
    if isinstance(value, PhaseScore):
        score = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        score = PhaseScore(float(value))
    else:
        raise TypeError(
            f"{what} returned {type(value).__name__}; a phase grader returns a score in [0, 1], "
            "a RewardResult, a GradeOutcome or a PhaseScore"
        )
    if not (math.isfinite(score.reward) and 0.0 <= score.reward <= 1.0):
        raise ValueError(f"{what} returned the score {score.reward!r}, not one in [0, 1]")
    return score


@dataclass(frozen=True)
class ServiceLevel:
    """The service level over a window: of ``total`` requests, ``bad`` failed, got no
    answer or answered slower than the latency objective; ``score`` is the share of the
    error budget (``budget``: the share of requests allowed to be bad) left, in [0, 1]."""

    score: float
    total: int
    bad: int
    availability: float
    budget: float
    p50_ms: float | None
    p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score, "total": self.total, "bad": self.bad,
            "availability": self.availability, "budget": self.budget,
            "budget_spent": (self.bad / self.total / self.budget) if self.total else None,
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
        }  # fmt: skip


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def _bad(op: Operation, latency_s: float) -> bool:
    return not op.ok or not math.isfinite(op.latency) or op.latency > latency_s


def service_level(
    ops: Sequence[Operation],
    slo: float,
    latency_ms: float,
    end: float | None = None,
    allowance: float | None = None,
) -> ServiceLevel:
    """The service level of ``ops`` against an availability objective ``slo`` (the error
    budget is ``1 - slo``) where an answer slower than ``latency_ms`` counts as bad. An
    operation still open at ``end`` (the window's end) and older than the latency
    objective is bad too (a hung service must not hide in unfinished requests); one
    younger than it is left out. No requests at all: score 0 (nothing was served).

    With ``allowance``, the budget is that many bad requests, however many were sent: the
    score is the share of it left (``max(0, 1 - bad / allowance)``), so idling through a
    quiet stretch buys no budget to spend on an outage (``availability`` still shows the
    plain share of good requests)."""
    latency_s = latency_ms / 1000.0
    judged = [
        op for op in ops
        if math.isfinite(op.complete) or end is None or end - op.intended > latency_s
    ]  # fmt: skip
    bad = sum(_bad(op, latency_s) for op in judged)
    total = len(judged)
    budget = 1.0 - slo
    if total == 0:
        return ServiceLevel(0.0, 0, 0, 0.0, budget, None, None)
    frac = bad / total
    if allowance is not None:
        score = max(0.0, 1.0 - bad / allowance) if allowance > 0 else float(bad == 0)
    else:
        score = max(0.0, 1.0 - frac / budget) if budget > 0 else float(bad == 0)
    lat = [op.latency * 1000 for op in judged if op.ok and math.isfinite(op.latency)]
    return ServiceLevel(
        score, total, bad, 1.0 - frac, budget, _percentile(lat, 0.5), _percentile(lat, 0.99)
    )


@dataclass(frozen=True)
class HostMetrics:
    """One host's requests over a window, as an on-call dashboard shows them."""

    host: str
    total: int
    ok: int
    slow: int
    p50_ms: float | None
    p99_ms: float | None
    last_error: str | None


def host_metrics(
    ops: Sequence[Operation], hosts: Sequence[str], latency_ms: float
) -> list[HostMetrics]:
    """Per host (in ``hosts``' order): requests, answered ok, slow ones, latency
    percentiles of the ok ones and the last error seen."""
    out = []
    for h in hosts:
        mine = [op for op in ops if op.node == h and math.isfinite(op.complete)]
        lat = [op.latency * 1000 for op in mine if op.ok]
        errors = [op for op in mine if not op.ok]
        last = max(errors, key=lambda op: op.complete) if errors else None
        out.append(
            HostMetrics(
                h, len(mine), sum(op.ok for op in mine),
                sum(1 for x in lat if x > latency_ms),
                _percentile(lat, 0.5), _percentile(lat, 0.99),
                None if last is None else (last.error or last.outcome.value)[:200],
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class EpisodeReward:
    """The episode's reward and its parts: each phase's reward and its share of the
    episode reward (``contributions``), the service level and the audit."""

    reward: float
    phases: Mapping[str, float]
    contributions: Mapping[str, float]
    service: float
    audit: float | None
    weights: Mapping[str, float]

    def breakdown(self) -> dict[str, float]:
        out = {f"phase:{n}": r for n, r in self.phases.items()}
        out["service"] = self.service
        if self.audit is not None:
            out["audit"] = self.audit
        return out


def phase_shares(
    phase_weights: Mapping[str, float], weights: Mapping[str, float]
) -> dict[str, float]:
    """Each phase's weight in the episode reward (the parts' weights normalised to 1)."""
    total = sum(weights.values())
    pw = sum(phase_weights.values())
    share = weights.get("phases", 0.0) / total if total else 0.0
    return {n: (share * w / pw if pw else 0.0) for n, w in phase_weights.items()}


def episode_reward(
    phases: Mapping[str, float],
    phase_weights: Mapping[str, float],
    service: float,
    audit: float | None,
    weights: Mapping[str, float],
) -> EpisodeReward:
    """Weighted phase rewards + service level + audit (``weights``: ``phases``,
    ``service``, ``audit``, normalised to sum 1). A phase missing from ``phases`` (never
    reached) scores 0; an audit of None (the task has none) must have weight 0."""
    total = sum(weights.values())
    shares = phase_shares(phase_weights, weights)
    contributions = {n: shares[n] * phases.get(n, 0.0) for n in phase_weights}
    rest = weights.get("service", 0.0) * service + weights.get("audit", 0.0) * (audit or 0.0)
    reward = sum(contributions.values()) + (rest / total if total else 0.0)
    return EpisodeReward(
        min(1.0, max(0.0, reward)),
        {n: phases.get(n, 0.0) for n in phase_weights},
        contributions,
        service,
        audit,
        {k: v / total for k, v in weights.items()} if total else dict(weights),
    )
