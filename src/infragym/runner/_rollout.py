"""Many episodes at once, on one machine.

Each episode gets its own Env (its own dev cluster, workstation and grading cluster, each
with its own run id and subnet), so episodes never see each other; a semaphore bounds how
many run at once. A platform failure in one episode is recorded for that seed (no reward)
and the others carry on.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError, InfraGymError
from ..agent import Agent
from ..env import ResetObservation, StepResult, make
from ..grading import GradeResult
from ..tasks import find_task
from ._trajectory import TRAJECTORIES_FILE, Trajectory, build_trajectory


@dataclass
class EpisodeOutcome:
    """One episode's result: ``reward`` is None exactly when ``error`` is set."""

    seed: int
    reward: float | None
    grade: GradeResult | None
    end_reason: str | None
    wall_s: float
    agent: str
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    trajectory: Trajectory | None = None


@dataclass(frozen=True)
class Summary:
    episodes: int
    errors: int
    mean: float | None
    min: float | None
    max: float | None

    @classmethod
    def of(cls, outcomes: Sequence[EpisodeOutcome]) -> Summary:
        rewards = [o.reward for o in outcomes if o.reward is not None]
        return cls(
            episodes=len(outcomes),
            errors=sum(1 for o in outcomes if o.error is not None),
            mean=statistics.fmean(rewards) if rewards else None,
            min=min(rewards) if rewards else None,
            max=max(rewards) if rewards else None,
        )


async def rollout_many(
    task: str,
    agent_factory: Callable[[], Agent],
    seeds: Sequence[int],
    max_concurrency: int = 4,
    *,
    artifacts_dir: str | Path | None = None,
    on_done: Callable[[EpisodeOutcome], None] | None = None,
    on_progress: Callable[[int, str], None] | None = None,
    **env_options: Any,
) -> list[EpisodeOutcome]:
    """Run one episode per seed, at most ``max_concurrency`` at a time; results in seed order.

    ``agent_factory`` makes a fresh agent per episode (agents keep per-episode state).
    ``artifacts_dir`` holds one run: one that already has a trajectories file is refused.
    ``on_done`` is called as each episode ends; ``on_progress(seed, message)`` relays what
    grading is doing.
    """
    if not seeds:
        raise ConfigError("rollout_many needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds must be distinct: the same seed twice is the same episode")
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be a whole number >= 1, not {max_concurrency!r}")
    find_task(task)  # fail fast on an unknown task, before any episode starts
    gate = asyncio.Semaphore(max_concurrency)
    base = Path(artifacts_dir) if artifacts_dir is not None else None
    if base is not None and (base / TRAJECTORIES_FILE).exists():
        raise ConfigError(
            f"{base} already holds the {TRAJECTORIES_FILE} of an earlier run: this run's "
            "episodes would be added to it (seeds twice, mixed agents); give another "
            f"artifacts directory or delete {base}"
        )

    async def one(seed: int) -> EpisodeOutcome:
        async with gate:
            agent = agent_factory()
            t0 = time.monotonic()
            opts = dict(env_options)
            if base is not None:
                opts["artifacts_dir"] = base / f"seed{seed}"
            if on_progress is not None:
                opts["progress"] = lambda msg, s=seed: on_progress(s, msg)
            obs: ResetObservation | None = None
            final: StepResult | None = None
            env = make(task, **opts)
            try:
                try:
                    obs = await env.reset(seed=seed)
                    final = await agent.play(env)
                finally:
                    await env.close()
            except InfraGymError as exc:
                out = EpisodeOutcome(
                    seed, None, None, None, time.monotonic() - t0, agent.name, error=str(exc)
                )
            else:
                grade: GradeResult = final.info["grade"]
                out = EpisodeOutcome(
                    seed,
                    grade.reward,
                    grade,
                    final.info.get("end_reason"),
                    time.monotonic() - t0,
                    agent.name,
                    error=grade.error,
                    info={"steps": final.info.get("step")},
                )
            out.trajectory = build_trajectory(
                task,
                seed,
                agent,
                obs,
                final,
                out.grade,
                out.wall_s,
                out.error if out.grade is None else None,
            )
            if base is not None:
                base.mkdir(parents=True, exist_ok=True)
                with (base / TRAJECTORIES_FILE).open("a", encoding="utf-8") as fh:
                    fh.write(out.trajectory.model_dump_json() + "\n")
            if on_done is not None:
                on_done(out)
            return out

    return list(await asyncio.gather(*(one(s) for s in seeds)))
