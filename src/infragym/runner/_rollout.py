"""Many episodes at once, on one machine or on the nodes of a Ray cluster (``_ray``).

Each episode gets its own Env (its own dev cluster, workstation and grading cluster, each
with its own run id and subnet), so episodes never see each other; locally a semaphore
bounds how many run at once. A platform failure in one episode is recorded for that seed (no reward)
and the others carry on. With an artifacts directory, the run lives in its store
(``_store``): a run of the same configuration in the same directory resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .._errors import ConfigError
from ..agent import Agent
from ..env import EnvOptions
from ..grading import default_concurrency
from ..remote import servers_from
from ..tasks import Task, find_task
from ._episode import SERVE_SESSIONS, EpisodeOutcome, play_episode, remote_options
from ._store import RunStore
from ._trajectory import TRAJECTORIES_FILE


def run_config(
    task: Task | str, agent: Agent, env_options: dict[str, Any], servers: Sequence[str] = ()
) -> dict[str, Any]:
    """What makes two runs the same run (the seeds are added by the store): a run directory
    resumes only a run of an equal configuration. A remote run's task is a name its
    servers know, and which servers play it is part of the run."""
    opts = dataclasses.asdict(EnvOptions.from_kwargs(**env_options))
    for k in ("artifacts_dir", "progress"):  # where and how it reports, not what it runs
        opts.pop(k, None)
    remote = {"servers": list(servers)} if servers else {}
    return {
        **remote,
        "task": task if isinstance(task, str) else task.name,
        "task_path": None if isinstance(task, str) else str(task.path.resolve()),
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
    max_concurrency: int | None = None,
    *,
    artifacts_dir: str | Path | None = None,
    on_done: Callable[[EpisodeOutcome], None] | None = None,
    on_progress: Callable[[int, str], None] | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    max_retries: int = 2,
    server: str | Sequence[str] | None = None,
    **env_options: Any,
) -> list[EpisodeOutcome]:
    """Run one episode per seed, at most ``max_concurrency`` at a time; results in seed order.

    ``backend="local"`` runs them in this process. ``max_concurrency`` then defaults to
    as many gradings as fit the machine (:func:`infragym.grading.default_concurrency` of
    the task's ``[grading] cores``). More is allowed (agent phases overlap), but gradings
    beyond the machine's room wait for it (:class:`infragym.grading.Admission`), so the
    rewards stay those of a calm machine.

    ``backend="ray"`` runs each episode as a Ray task on a node of the cluster at
    ``ray_address`` that advertises the ``infragym_episode`` resource (one slot per
    episode; see :mod:`infragym.runner._ray`); without an address a local cluster is
    started. ``max_concurrency`` there bounds the episodes in flight (default: the
    cluster's slots decide). An episode whose node or worker dies is retried on another
    node up to ``max_retries`` times, then recorded as a platform failure (no reward).
    ``agent_factory`` must then be serializable (cloudpickle): it is called on the node.

    ``agent_factory`` makes a fresh agent per episode (agents keep per-episode state).
    ``artifacts_dir`` holds one run and its store (``run.sqlite``): a directory holding a
    run of the same configuration (task, agent, model, seeds, env options, platform
    version) resumes it (finished episodes kept, interrupted and platform-failed ones rerun
    from scratch), one of another configuration is refused, as is one holding a
    trajectories file without a store. ``on_done`` is called as each episode ends (and
    at once for each kept one, ``kept`` set); ``on_progress(seed, message)`` relays what
    grading is doing (with Ray: where each episode starts and what became of a lost one).

    ``server`` (a URL, a comma-separated list or a sequence of them) plays every episode
    on remote ``infragym serve`` servers instead (:class:`infragym.remote.RemoteEnv`),
    each on the server running the fewest of this run's episodes; a server at capacity is
    retried. The Env options go to the server (only those a client may set); its grading
    artifacts stay there, the grade comes back. ``max_concurrency`` then defaults to 4 per
    server (``infragym serve``'s default ``--max-sessions``).
    """
    if not seeds:
        raise ConfigError("rollout_many needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds must be distinct: the same seed twice is the same episode")
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be 'local' or 'ray', not {backend!r}")
    if backend == "local" and ray_address is not None:
        raise ConfigError("ray_address is for backend='ray'")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max_retries must be a whole number >= 0, not {max_retries!r}")
    servers = servers_from(server) if server is not None else []
    if servers and backend != "local":
        raise ConfigError("server= plays on remote servers: it takes no Ray backend")
    spec: Task | str = task
    if servers:
        if max_concurrency is None:
            max_concurrency = min(len(seeds), SERVE_SESSIONS * len(servers))
        remote_options(env_options)  # refuse what a server would refuse, before anything runs
    else:
        spec = find_task(task)  # fail fast on an unknown task, before any episode starts
        spec.require_ready()  # and on one whose Debian packages are missing
    factory_blob = b""
    if backend == "ray":
        from ._ray import pickle_factory

        factory_blob = pickle_factory(agent_factory)  # one that cannot travel, before all
    if max_concurrency is None and backend == "local":
        assert isinstance(spec, Task)
        max_concurrency = min(len(seeds), default_concurrency(spec.spec.grading_cores))
    if max_concurrency is not None and (
        not isinstance(max_concurrency, int) or max_concurrency < 1
    ):
        raise ConfigError(f"max_concurrency must be a whole number >= 1, not {max_concurrency!r}")
    base = Path(artifacts_dir).resolve() if artifacts_dir is not None else None
    store: RunStore | None = None
    kept: dict[int, EpisodeOutcome] = {}
    spare: list[Agent] = []
    if base is not None:
        spare.append(agent_factory())  # fresh, it plays the first episode that runs
        store = RunStore.open(base, run_config(spec, spare[0], env_options, servers), seeds)
        kept = {
            r.seed: EpisodeOutcome.from_record(r) for r in store.episodes() if r.status == "done"
        }
        for o in kept.values():
            if on_done is not None:
                on_done(o)

    def record(out: EpisodeOutcome) -> EpisodeOutcome:
        """The finished episode into the store and trajectories.jsonl, then ``on_done``."""
        if store is not None and base is not None and out.trajectory is not None:
            line = out.trajectory.model_dump_json()
            store.finish(
                out.seed,
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

    todo = [s for s in seeds if s not in kept]
    try:
        if backend == "ray":
            from ._ray import RayRun

            assert isinstance(spec, Task)
            ray_run = RayRun(
                task=str(spec.path.resolve()) if Path(task).is_dir() else task,
                task_name=spec.name,
                factory_blob=factory_blob,
                agent_name=(spare[0] if spare else agent_factory()).name,
                env_options=env_options,
                base=base,
                store=store,
                record=record,
                on_progress=on_progress,
                max_in_flight=max_concurrency,
                max_retries=max_retries,
            )
            done = await ray_run.run(todo, ray_address, slots_task=task)
        else:
            done = await _run_local(
                task, agent_factory, todo, max_concurrency or 1, spare, env_options,
                base, store, record, on_progress, servers,
            )  # fmt: skip
        return [kept[s] if s in kept else done[s] for s in seeds]
    finally:
        if store is not None:
            store.close()


async def _run_local(
    task: str,
    agent_factory: Callable[[], Agent],
    seeds: Sequence[int],
    max_concurrency: int,
    spare: list[Agent],
    env_options: dict[str, Any],
    base: Path | None,
    store: RunStore | None,
    record: Callable[[EpisodeOutcome], EpisodeOutcome],
    on_progress: Callable[[int, str], None] | None,
    servers: Sequence[str] = (),
) -> dict[int, EpisodeOutcome]:
    gate = asyncio.Semaphore(max_concurrency)
    busy = dict.fromkeys(servers, 0)  # this run's episodes on each server

    async def one(seed: int) -> EpisodeOutcome:
        async with gate:
            if store is not None:
                shutil.rmtree(store.episode_dir(seed), ignore_errors=True)  # a dead attempt's
                store.mark_running(seed)
            agent = spare.pop() if spare else agent_factory()
            opts = dict(env_options)
            if base is not None:
                opts["artifacts_dir"] = base / f"seed{seed}"
            if on_progress is not None:
                opts["progress"] = lambda msg, s=seed: on_progress(s, msg)
            url = min(servers, key=lambda u: busy[u]) if servers else None
            if url is not None:
                busy[url] += 1
            try:
                return record(await play_episode(task, agent, seed, opts, url))
            finally:
                if url is not None:
                    busy[url] -= 1

    tasks = [asyncio.ensure_future(one(s)) for s in seeds]
    try:
        return dict(zip(seeds, await asyncio.gather(*tasks), strict=True))
    finally:  # no episode may still write when the store closes
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
