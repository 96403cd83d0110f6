"""Validate a task as a whole, in the manner of Gymnasium's ``check_env``.

:func:`validate_tiers` grades every reference solution and probe of a task (and the
starter workspace, what a no-op agent submits) on each seed, for real, and compares each
reward with the band ``task.toml`` states; :func:`check_task` is what one generic test runs
for every built-in task, so a new task is under CI the moment it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ConfigError
from ..agent import Agent, ProbeAgent, run_episode
from ..env import Env, EnvOptions, EpisodeError
from ..grading import GradeResult, grade_workspace, wait_for_calm
from ..probes import probe
from ..tasks import STARTER, Band, Task, load_task, validate_task


@dataclass(frozen=True)
class TierRow:
    """One tier's rewards across the seeds, against its band."""

    tier: str
    band: Band
    rewards: dict[int, float | None]
    errors: dict[int, str] = field(default_factory=dict)
    max_spread: float | None = None
    functional: dict[int, float | None] = field(default_factory=dict)
    must_pass_functional: bool = False
    """A probe that cheats only after the functional tests: failing them, it tested nothing."""

    @property
    def graded(self) -> list[float]:
        return [r for r in self.rewards.values() if r is not None]

    @property
    def spread(self) -> float:
        g = self.graded
        return max(g) - min(g) if len(g) > 1 else 0.0

    @property
    def problems(self) -> list[str]:
        out = [
            f"{self.tier} seed {s}: reward {r:.3f} is outside its band {self.band}"
            for s, r in self.rewards.items()
            if r is not None and r not in self.band
        ]
        out += [f"{self.tier} seed {s}: platform error: {e}" for s, e in self.errors.items()]
        if self.must_pass_functional:
            out += [
                f"{self.tier} seed {s}: functional score {f if f is not None else 'none'}: this "
                "probe serves honestly through the functional tests and cheats after them, "
                "so failing them it tested nothing (is it too slow to start for this task?)"
                for s, f in self.functional.items()
                if s not in self.errors and f != 1.0
            ]
        if self.max_spread is not None and self.spread > self.max_spread + 1e-9:
            out.append(
                f"{self.tier}: rewards spread {self.spread:.3f} across seeds, over the "
                f"task's max_spread {self.max_spread:g}"
            )
        return out


@dataclass(frozen=True)
class TierReport:
    task: str
    seeds: tuple[int, ...]
    rows: list[TierRow]
    static_problems: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.static_problems + [p for row in self.rows for p in row.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "task": self.task,
            "seeds": list(self.seeds),
            "ok": self.ok,
            "problems": self.problems,
            "tiers": [
                {
                    "tier": r.tier,
                    "band": {"min": r.band.min, "max": r.band.max},
                    "rewards": {str(s): v for s, v in r.rewards.items()},
                    "errors": {str(s): e for s, e in r.errors.items()},
                    "spread": r.spread,
                    "ok": not r.problems,
                }
                for r in self.rows
            ],
        }


def static_problems(task: Task) -> list[str]:
    """What is wrong with a task without grading anything: layout, spec, the grader's
    import and entry point, the files its start command deploys (``validate_task``)."""
    return validate_task(task.path)


def _chosen(task: Task, have: list[str], tiers: Iterable[str] | None) -> list[str]:
    if tiers is None:
        return have
    chosen = list(dict.fromkeys(tiers))
    unknown = [t for t in chosen if t not in have]
    if unknown:
        raise ConfigError(
            f"task {task.name} has no tier {', '.join(map(repr, unknown))} "
            f"(it has: {', '.join(have)})"
        )
    return chosen


def tier_names(task: Task, tiers: Iterable[str] | None = None) -> list[str]:
    """The tiers to grade: those asked for, else every solution folder, the starter and
    the catalogue's probes the task lists."""
    return _chosen(task, [*task.solutions(), STARTER, *task.spec.validation.probes], tiers)


def _row(
    task: Task, tier: str, seeds: Sequence[int], results: dict[tuple[str, int], GradeResult]
) -> TierRow:
    """One tier's rewards against its band; a tier that must score is held to the task's
    ``max_spread``."""
    spec = task.spec.validation
    band = spec.bands.get(tier, Band())
    rewards = {s: results[tier, s].reward for s in seeds}
    errors = {s: str(results[tier, s].error) for s in seeds if results[tier, s].error}
    spread = spec.max_spread if band.min > 0 else None
    functional = {s: results[tier, s].functional for s in seeds}
    must = tier in spec.probes and probe(tier).passes_functional
    return TierRow(tier, band, rewards, errors, spread, functional, must)


async def validate_tiers(
    task: Task,
    seeds: Sequence[int] | None = None,
    tiers: Iterable[str] | None = None,
    *,
    concurrency: int = 1,
    out_dir: str | Path | None = None,
    on_result: Callable[[str, int, GradeResult], None] | None = None,
    retries: int = 2,
    retry_wait_s: float = 60.0,
) -> TierReport:
    """Grade every tier on every seed (``concurrency`` at a time) against its band.

    A tier's spread across seeds is held to the task's ``max_spread`` when its band has a
    floor (a tier that must score: a robust reference whose reward depends on the seed is
    a flaky task); cheats and weak tiers only need to stay under their ceilings. A probe
    of the catalogue built on a reference wraps the task's ``probe_base``; an agent probe
    is played through a whole episode (:func:`probe_episode`); a probe meant to pass the
    functional tests that failed them is a problem (it tested nothing). A grading
    withheld as overloaded is graded again, up to ``retries`` times, once the machine is
    calmer (at most ``retry_wait_s`` of waiting each time); still overloaded, it is a
    platform error in the report, never a reward.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
    if task.spec.operate is not None:
        return await validate_live_tiers(task, seeds, tiers, out_dir=out_dir, on_result=on_result)
    task.require_ready()  # missing packages would grade every tier 0: a platform error
    spec = task.spec.validation
    seeds = tuple(spec.seeds if seeds is None else seeds)
    names = tier_names(task, tiers)
    problems = static_problems(task)
    if problems:
        return TierReport(task.name, seeds, [], problems)
    sem = asyncio.Semaphore(concurrency)
    results: dict[tuple[str, int], GradeResult] = {}

    with tempfile.TemporaryDirectory(prefix="infragym-validate-") as tmp:
        root = Path(out_dir) if out_dir is not None else Path(tmp)

        def workspace(tier: str) -> Path | None:
            if tier == STARTER:
                return task.workspace
            if tier in task.solutions():
                return task.solution(tier)
            p = probe(tier)
            if p.agent:
                ProbeAgent(task, tier)  # a probe that cannot be built fails before any grading
                return None
            return p.materialize(Path(tmp) / "probes" / tier, task.probe_base(tier))

        spaces = {t: workspace(t) for t in names}

        async def one(tier: str, seed: int) -> None:
            ws = spaces[tier]
            async with sem:
                where = root / f"{tier}-seed{seed}"
                if ws is None:  # an agent probe: its whole episode (the Env retries)
                    r = await probe_episode(task, tier, seed, where, retries, retry_wait_s)
                else:
                    r = await grade_workspace(task, ws, seed, where)
                # a grading the machine was too busy to measure has no reward: grade it
                # again on a calmer machine, as the Env does, a bounded number of times
                for attempt in range(1, retries + 1):
                    if ws is None or not r.overloaded:
                        break
                    await wait_for_calm(retry_wait_s)
                    r = await grade_workspace(
                        task, ws, seed, where.with_name(f"{where.name}-retry{attempt}")
                    )
            results[tier, seed] = r
            if on_result is not None:
                on_result(tier, seed, r)

        await asyncio.gather(*(one(t, s) for t in names for s in seeds))

    return TierReport(task.name, seeds, [_row(task, t, seeds, results) for t in names])


async def probe_episode(
    task: Task, name: str, seed: int, where: Path, retries: int = 2, retry_wait_s: float = 60.0
) -> GradeResult:
    """The grade of a whole episode of the catalogue's agent probe ``name`` on ``task``
    (artifacts under ``where``); a failed episode is a grade with an error, no reward."""
    options = EnvOptions(
        artifacts_dir=where, grade_retries=retries, grade_retry_wait_s=retry_wait_s
    )
    return await _played(
        task, seed, Env(task, options), ProbeAgent(task, name), f"the {name} probe"
    )


async def _played(task: Task, seed: int, env: Env, agent: Agent, who: str) -> GradeResult:
    """The grade of ``agent``'s whole episode; a failed one is a grade with an error and
    no reward (the agent's own bug too: the other tiers go on)."""
    try:
        last = await run_episode(env, agent, seed)
    except EpisodeError as exc:
        if exc.grade is not None:
            return exc.grade
        return GradeResult(task=task.name, seed=seed, reward=None, error=str(exc))
    except Exception as exc:
        return GradeResult(
            task=task.name, seed=seed, reward=None,
            error=f"{who} failed: {type(exc).__name__}: {exc}",
        )  # fmt: skip
    grade = last.info.get("grade")
    if not isinstance(grade, GradeResult):
        return GradeResult(
            task=task.name, seed=seed, reward=None,
            error=f"{who}'s episode ended without a grade ({last.info})",
        )  # fmt: skip
    return grade


LIVE_NOOP = "noop"


def live_tier_names(task: Task, tiers: Iterable[str] | None = None) -> list[str]:
    """A live task's tiers: its operators (``solutions/<tier>/operator.py``) and ``noop``
    (every ticket closed at once, doing nothing)."""
    return _chosen(task, [*task.solutions(), LIVE_NOOP], tiers)


async def live_episode(task: Task, tier: str, seed: int, where: Path) -> GradeResult:
    """The grade of one episode of a live task played by its operator ``tier`` (or the
    no-op); a failed episode is a grade with an error, no reward."""
    from ..agent import OperatorAgent, live_noop_agent

    agent = live_noop_agent() if tier == LIVE_NOOP else OperatorAgent(task, tier)
    env = Env(task, EnvOptions(artifacts_dir=where))
    return await _played(task, seed, env, agent, f"the {tier} operator")


@contextlib.asynccontextmanager
async def _scripted_judge(name: str | None) -> AsyncIterator[None]:
    """With ``name`` (a labelled set), the judge of this process is the scripted judge of
    its rubric on a loopback server while the block runs; the environment is restored."""
    if name is None:
        yield
        return
    from ..judge import LabelledSet, builtin_set
    from .model_server import ScriptedModelServer
    from .scripted_judge import scripted_judge

    rubric = LabelledSet.load(builtin_set(name)).rubric
    keys = ("INFRAGYM_JUDGE_MODEL", "INFRAGYM_JUDGE_BASE_URL", "INFRAGYM_JUDGE_API_KEY")
    saved = {k: os.environ.get(k) for k in keys}
    async with ScriptedModelServer(then=scripted_judge(rubric)) as server:
        values = ("test-model", server.url, server.api_key or "")
        os.environ.update(dict(zip(keys, values, strict=True)))
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


async def validate_live_tiers(
    task: Task,
    seeds: Sequence[int] | None = None,
    tiers: Iterable[str] | None = None,
    *,
    out_dir: str | Path | None = None,
    on_result: Callable[[str, int, GradeResult], None] | None = None,
) -> TierReport:
    """:func:`validate_tiers` of a live task: each operator tier (and the no-op) plays a
    whole episode per seed, one at a time (a live cluster runs for the whole episode),
    judged by the task's ``[validation] scripted_judge`` if it names one."""
    spec = task.spec.validation
    seeds = tuple(spec.seeds if seeds is None else seeds)
    names = live_tier_names(task, tiers)
    problems = static_problems(task)
    if problems:
        return TierReport(task.name, seeds, [], problems)
    results: dict[tuple[str, int], GradeResult] = {}
    with tempfile.TemporaryDirectory(prefix="infragym-validate-") as tmp:
        root = Path(out_dir) if out_dir is not None else Path(tmp)
        async with _scripted_judge(spec.scripted_judge):
            for tier in names:
                for seed in seeds:
                    r = await live_episode(task, tier, seed, root / f"{tier}-seed{seed}")
                    results[tier, seed] = r
                    if on_result is not None:
                        on_result(tier, seed, r)
    return TierReport(task.name, seeds, [_row(task, t, seeds, results) for t in names])


def check_task(
    task: Task | str | Path,
    seeds: Sequence[int] = (1,),
    tiers: Iterable[str] | None = None,
    concurrency: int = 1,
) -> TierReport:
    """Raise ``AssertionError`` listing every problem of ``task``: its layout and grader,
    and every tier (reference, probe, starter) graded on ``seeds`` against its band.

    Every tier must have a band in ``task.toml``: a reference whose quality nobody stated
    proves nothing.
    """
    t = task if isinstance(task, Task) else load_task(task)
    report = asyncio.run(validate_tiers(t, seeds, tiers, concurrency=concurrency))

    unbanded = [r.tier for r in report.rows if r.tier not in t.spec.validation.bands]
    problems = report.problems + [
        f"{name}: no band in task.toml [validation.bands]; state what it must score"
        for name in unbanded
    ]
    if problems:
        raise AssertionError(f"task {t.name}:\n  - " + "\n  - ".join(problems))
    return report
