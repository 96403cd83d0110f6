"""Many episodes at once, on one machine.

Each episode gets its own Env (its own dev cluster, workstation and grading cluster, each
with its own run id and subnet), so episodes never see each other; a semaphore bounds how
many run at once. A platform failure in one episode is recorded for that seed (no reward)
and the others carry on. With an artifacts directory, the run lives in its store
(``_store``): a run of the same configuration in the same directory resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .._errors import ConfigError, InfraGymError
from ..agent import Agent
from ..env import EnvOptions, ResetObservation, StepResult, make
from ..grading import GradeResult
from ..tasks import Task, find_task
from ._store import EpisodeRecord, RunStore
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
    kept: bool = False  # finished by an earlier process of this run, not rerun

    @classmethod
    def from_record(cls, r: EpisodeRecord) -> EpisodeOutcome:
        """A finished episode of the store, as the run that finished it returned it."""
        return cls(
            r.seed,
            r.reward,
            GradeResult.model_validate_json(r.grade) if r.grade else None,
            r.end_reason,
            r.wall_s or 0.0,
            r.agent,
            error=r.error,
            info=r.info,
            trajectory=Trajectory.model_validate_json(r.trajectory) if r.trajectory else None,
            kept=True,
        )


def run_config(task: Task, agent: Agent, env_options: dict[str, Any]) -> dict[str, Any]:
    """What makes two runs the same run (the seeds are added by the store): a run directory
    resumes only a run of an equal configuration."""
    opts = dataclasses.asdict(EnvOptions.from_kwargs(**env_options))
    for k in ("artifacts_dir", "progress"):  # where and how it reports, not what it runs
        opts.pop(k, None)
    return {
        "task": task.name,
        "task_path": str(task.path.resolve()),
        "agent": agent.name,
        "model": getattr(agent, "model", None),
        "env_options": json.loads(json.dumps(opts, sort_keys=True, default=str)),
        "platform_version": __version__,
    }


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
    ``artifacts_dir`` holds one run and its store (``run.sqlite``): a directory holding a
    run of the same configuration (task, agent, model, seeds, env options, platform
    version) resumes it (finished episodes kept, interrupted and platform-failed ones rerun
    from scratch), one of another configuration is refused, as is one holding a
    trajectories file without a store. ``on_done`` is called as each episode ends (and
    at once for each kept one, ``kept`` set); ``on_progress(seed, message)`` relays what
    grading is doing.
    """
    if not seeds:
        raise ConfigError("rollout_many needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds must be distinct: the same seed twice is the same episode")
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be a whole number >= 1, not {max_concurrency!r}")
    spec = find_task(task)  # fail fast on an unknown task, before any episode starts
    spec.require_ready()  # and on one whose Debian packages are missing
    gate = asyncio.Semaphore(max_concurrency)
    base = Path(artifacts_dir) if artifacts_dir is not None else None
    store: RunStore | None = None
    kept: dict[int, EpisodeOutcome] = {}
    spare: list[Agent] = []
    if base is not None:
        spare.append(agent_factory())  # fresh, it plays the first episode that runs
        store = RunStore.open(base, run_config(spec, spare[0], env_options), seeds)
        kept = {
            r.seed: EpisodeOutcome.from_record(r) for r in store.episodes() if r.status == "done"
        }
        for o in kept.values():
            if on_done is not None:
                on_done(o)

    async def one(seed: int) -> EpisodeOutcome:
        if seed in kept:
            return kept[seed]
        async with gate:
            if store is not None:
                shutil.rmtree(store.episode_dir(seed), ignore_errors=True)  # a dead attempt's
                store.mark_running(seed)
            agent = spare.pop() if spare else agent_factory()
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
                    info={"steps": final.info.get("step"), "variant": grade.variant},
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
            if store is not None and base is not None:
                line = out.trajectory.model_dump_json()
                store.finish(
                    seed,
                    reward=out.reward,
                    functional=out.grade.functional if out.grade else None,
                    breakdown=out.grade.breakdown if out.grade else {},
                    end_reason=out.end_reason,
                    error=out.error,
                    wall_s=out.wall_s,
                    info=out.info,
                    grade=out.grade.model_dump_json() if out.grade else None,
                    trajectory=line,
                )
                # only a committed row's line: a crash before this write loses nothing (a
                # resume rewrites the file from the store), one after it duplicates nothing
                with (base / TRAJECTORIES_FILE).open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            if on_done is not None:
                on_done(out)
            return out

    tasks = [asyncio.ensure_future(one(s)) for s in seeds]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        if store is not None:  # no episode may still write when the store closes
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            store.close()
