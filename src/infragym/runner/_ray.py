"""Episodes on the nodes of a Ray cluster (``rollout_many(..., backend="ray")``).

A node may host episodes when it runs as root with infragym and the task's packages
installed, and advertises :data:`EPISODE_RESOURCE` with as many slots as it carries
(``ray start ... --resources='{"infragym_episode": 4}'``; :func:`episode_slots` gives a
machine's default, ``infragym node-resources`` prints it). Each episode is one Ray task
that takes one slot and no CPU (gradings wait for room on their node's own admission
ledger, as locally): the Env, its sandboxes and its grading all live on that node, and so
do its artefacts (under the same path as the run directory, on that node's disk). What
comes back is the task's return value: the :class:`EpisodeOutcome`, grade and trajectory
included. The driver alone writes the run's store and ``trajectories.jsonl``, as results
arrive.

The task is a streaming generator: it first says where it runs (node, worker pid), which
the driver records (the row turns ``running``), then returns the outcome. An attempt lost
with its worker or node (``WorkerCrashedError``, ``NodeDiedError``, a lost result) goes
back to ``pending`` and is submitted again (Ray's own retries are off, so every attempt
is counted in the store) up to ``max_retries`` times; then it is recorded as a platform
failure, with no reward. When the node of a lost attempt is still alive, the driver runs
``cleanup(owner_pid=...)`` there, so the dead worker's sandboxes do not outlive it; a dead
node's leftovers are for ``infragym cleanup`` on that machine when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .._errors import ConfigError, InfraGymError
from ..agent import Agent
from ..grading import default_concurrency
from ..sandbox import run_interruptible
from ..sandbox.lowlevel import pid_start_time, pid_state
from ..tasks import DEFAULT_GRADING_CORES, find_task, list_tasks
from ._episode import EpisodeOutcome, play_episode
from ._store import RunStore
from ._trajectory import Trajectory

EPISODE_RESOURCE = "infragym_episode"
SWEEP_TIMEOUT_S = 120.0
TEARDOWN_TIMEOUT_S = 120.0  # what a cancelled episode gets to remove its sandboxes
RAY_MISSING = "backend='ray' needs Ray: pip install 'infragym[ray]'"


def episode_slots(task: str | None = None) -> int:
    """The slots of :data:`EPISODE_RESOURCE` this machine carries by default: as many
    episodes as gradings of ``task`` fit its cores (:func:`default_concurrency`), or, with
    no task, gradings of the costliest known task."""
    if task is not None:
        cost = find_task(task).spec.grading_cores
    else:
        cost = max((t.spec.grading_cores for t in list_tasks()), default=DEFAULT_GRADING_CORES)
    return default_concurrency(cost)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def pickle_factory(agent_factory: Callable[[], Agent]) -> bytes:
    """``agent_factory`` as the nodes get it (cloudpickle), or a :class:`ConfigError`
    saying why it cannot travel."""
    ray = _ray()
    try:
        blob: bytes = ray.cloudpickle.dumps(agent_factory)
    except Exception as exc:
        raise ConfigError(
            f"the agent factory {agent_factory!r} cannot be sent to Ray's workers "
            f"({type(exc).__name__}: {exc}): each episode calls it on its node, so it must "
            "pickle with cloudpickle. A module-level function, a lambda or a "
            "functools.partial over plain data works (e.g. lambda: "
            "OpenAIAgent(model=..., base_url=...), lambda: reference_agent(task, 'robust'), "
            "infragym.agent.noop_agent); a closure over a live client, lock, socket or "
            "open file does not: build those inside the factory"
        ) from None
    return blob


@dataclass(frozen=True)
class Started:
    """Where an attempt runs: the first thing its task yields."""

    node_id: str
    node_ip: str
    pid: int
    pid_start: int | None  # the worker's kernel start time: tells it from a reused pid


@dataclass(frozen=True)
class SetupFailed:
    """The node could not start the episode at all (e.g. the factory does not load there):
    the run's configuration is wrong, not one episode."""

    message: str


def episode_on_node(
    task: str,
    factory_blob: bytes,
    seed: int,
    env_options: dict[str, Any],
    artifacts: str | None,
    driver_version: str,
) -> Iterator[Started | SetupFailed | EpisodeOutcome]:
    """The Ray task of one episode (runs in a worker on a node)."""
    ray = _ray()
    ctx = ray.get_runtime_context()
    pid = os.getpid()
    node = Started(ctx.get_node_id(), ray.util.get_node_ip_address(), pid, pid_start_time(pid))
    yield node
    where = f"on node {node.node_ip}"
    if driver_version != __version__:
        yield SetupFailed(
            f"{where} infragym is {__version__}, the driver's is {driver_version}: install "
            "the same version on every node"
        )
        return
    try:
        factory = ray.cloudpickle.loads(factory_blob)
        agent = factory()
    except InfraGymError as exc:
        yield SetupFailed(f"{where} the agent factory failed: {exc}")
        return
    except Exception as exc:
        yield SetupFailed(
            f"{where} the agent factory could not be loaded or called "
            f"({type(exc).__name__}: {exc}); a function of a module is sent by name, so "
            "that module must be importable on every node (or send a lambda, sent whole)"
        )
        return
    opts = dict(env_options)
    if artifacts is not None:
        shutil.rmtree(artifacts, ignore_errors=True)  # a lost attempt's, if it ran here
        opts["artifacts_dir"] = artifacts
    out = run_interruptible(play_episode(task, agent, seed, opts))
    out.info.update(node=node.node_ip, node_id=node.node_id)
    yield out


def sweep_owner(pid: int, pid_start: int | None) -> list[str]:
    """The Ray task that removes what a dead worker left on its node: once the worker is
    gone (or a zombie its raylet has not reaped yet), the runs it owned."""
    from ..sandbox import cleanup

    deadline = time.monotonic() + SWEEP_TIMEOUT_S / 2
    while time.monotonic() < deadline:
        if pid_start is None or pid_start_time(pid) != pid_start:
            # gone: its runs are no live owner's (a process that reused the pid is not it)
            return cleanup(owner_pid=pid, owner_start=pid_start).runs
        if pid_state(pid) in ("Z", "X"):  # dead, not reaped yet
            return cleanup(everything=True, owner_pid=pid, owner_start=pid_start).runs
        time.sleep(0.1)
    return []  # the worker still runs: whatever it made is its own to remove


@contextlib.contextmanager
def connected(address: str | None, slots_task: str) -> Iterator[str]:
    """This process connected to a Ray cluster that has nodes for episodes; yields where.

    Already connected (``ray.init`` called by the caller): that cluster, left connected.
    Else ``address`` (or ``$RAY_ADDRESS``; ``auto`` is the cluster ``ray start`` made on
    this machine), disconnected at the end; with neither, a local one-node cluster whose
    node carries :func:`episode_slots` of the task, shut down at the end.
    """
    ray = _ray()
    owned = not ray.is_initialized()
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if owned:
        try:
            if address is None:
                slots = episode_slots(slots_task)
                ray.init(
                    address="local",
                    resources={EPISODE_RESOURCE: slots},
                    include_dashboard=False,
                    **quiet,
                )
            else:
                ray.init(address=address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
    try:
        if not _episode_nodes(ray):
            raise ConfigError(
                f"no live node of {where} advertises the {EPISODE_RESOURCE} resource, so "
                "none may host episodes: start each such node with ray start ... "
                f"--resources='{{\"{EPISODE_RESOURCE}\": N}}' (`infragym node-resources` "
                "prints a machine's default)"
            )
        yield where
    finally:
        if owned:
            ray.shutdown()


def _episode_nodes(ray: Any) -> dict[str, float]:
    """Live nodes that may host episodes: node id -> slots."""
    return {
        n["NodeID"]: n["Resources"][EPISODE_RESOURCE]
        for n in ray.nodes()
        if n.get("Alive") and n.get("Resources", {}).get(EPISODE_RESOURCE, 0) >= 1
    }


def _node_alive(ray: Any, node_id: str) -> bool:
    return any(n["NodeID"] == node_id and n.get("Alive") for n in ray.nodes())


class RayRun:
    """One run's episodes on a Ray cluster (made by :func:`rollout_many`)."""

    def __init__(
        self,
        *,
        task: str,
        task_name: str,
        factory_blob: bytes,
        agent_name: str,
        env_options: dict[str, Any],
        base: Path | None,
        store: RunStore | None,
        record: Callable[[EpisodeOutcome], EpisodeOutcome],
        on_progress: Callable[[int, str], None] | None,
        max_in_flight: int | None,
        max_retries: int,
    ) -> None:
        self.task = task
        self.task_name = task_name
        self.blob = factory_blob
        self.agent_name = agent_name
        self.env_options = {k: v for k, v in env_options.items() if k != "progress"}
        self.base = base
        self.store = store
        self.record = record
        self.on_progress = on_progress
        self.gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self.max_retries = max_retries
        self.ray = _ray()
        self.remote: Any = None
        self.sweeper: Any = None

    def _say(self, seed: int, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(seed, message)

    async def run(
        self, seeds: Sequence[int], address: str | None, slots_task: str
    ) -> dict[int, EpisodeOutcome]:
        with connected(address, slots_task):
            ray = self.ray
            self.remote = ray.remote(
                num_cpus=0,
                resources={EPISODE_RESOURCE: 1},
                num_returns="streaming",
                max_retries=0,
                retry_exceptions=False,
            )(episode_on_node)
            self.sweeper = ray.remote(num_cpus=0, max_retries=0)(sweep_owner)
            tasks = [asyncio.ensure_future(self._one(s)) for s in seeds]
            try:
                return dict(zip(seeds, await asyncio.gather(*tasks), strict=True))
            finally:  # no episode may still run (or write) when Ray and the store close
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, seed: int) -> EpisodeOutcome:
        lost: list[str] = []
        t0 = time.monotonic()
        while True:
            async with self.gate or contextlib.nullcontext():
                why = await self._attempt(seed)
            if isinstance(why, EpisodeOutcome):
                return self.record(why)
            lost.append(why)
            if len(lost) > self.max_retries:
                return self.record(self._given_up(seed, lost, time.monotonic() - t0))
            self._say(seed, f"{why}; retrying ({len(lost)} of {self.max_retries} retries)")

    async def _attempt(self, seed: int) -> EpisodeOutcome | str:
        """One attempt: its outcome, or why it was lost (its row back to pending)."""
        ray = self.ray
        artifacts = str(self.base / f"seed{seed}") if self.base is not None else None
        gen = self.remote.remote(
            self.task, self.blob, seed, self.env_options, artifacts, __version__
        )
        started: Started | None = None
        try:
            first = await _next(gen)
            assert isinstance(first, Started), first
            started = first
            if self.store is not None:
                self.store.mark_running(seed)
            self._say(seed, f"started on node {started.node_ip} ({started.node_id[:12]}), "
                            f"worker pid {started.pid}")  # fmt: skip
            result = await _next(gen)
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError,
        ) as exc:
            return await self._lost(seed, started, exc)
        except ray.exceptions.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None  # a bug, as it would be locally
        except asyncio.CancelledError:
            await self._cancel(gen)
            raise
        if isinstance(result, SetupFailed):
            raise ConfigError(result.message)
        assert isinstance(result, EpisodeOutcome), result
        return result

    async def _lost(self, seed: int, started: Started | None, exc: Exception) -> str:
        text = str(exc).strip()
        first = text.splitlines()[0].split(". ")[0] if text else ""
        where = f" on node {started.node_ip}" if started else ""
        why = f"attempt lost{where} ({type(exc).__name__}: {first})"
        if self.store is not None:
            self.store.requeue(seed)
        if started is not None:
            node_died = isinstance(exc, self.ray.exceptions.NodeDiedError)
            swept = None if node_died else await self._sweep(started)
            if swept is None:
                why += "; the node is gone (`infragym cleanup` there sweeps what it left)"
            else:
                why += f"; its worker's {len(swept)} sandbox run(s) removed from the node"
        return why

    async def _sweep(self, started: Started) -> list[str] | None:
        """``cleanup(owner_pid=...)`` on the node of a dead worker: the runs removed, or
        None when the node is gone."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        if not _node_alive(ray, started.node_id):
            return None
        ref = self.sweeper.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(started.node_id, soft=False)
        ).remote(started.pid, started.pid_start)
        try:
            runs: list[str] = await asyncio.wait_for(ref, SWEEP_TIMEOUT_S)
        except (TimeoutError, ray.exceptions.RayError):
            return None  # the node went too
        return runs

    async def _cancel(self, gen: Any) -> None:
        """Stop an attempt and wait for its teardown (its sandboxes removed on its node),
        whatever further cancellations come meanwhile; the caller re-raises."""
        with contextlib.suppress(Exception):
            self.ray.cancel(gen)
        waiter = asyncio.ensure_future(_completed(gen))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TEARDOWN_TIMEOUT_S
        while not waiter.done() and loop.time() < deadline:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([waiter], timeout=deadline - loop.time())
        waiter.cancel()

    def _given_up(self, seed: int, lost: list[str], wall_s: float) -> EpisodeOutcome:
        error = (
            f"platform failure: the episode was lost {len(lost)} time(s) with its Ray "
            f"worker or node (max_retries={self.max_retries}); last: {lost[-1]}"
        )
        out = EpisodeOutcome(seed, None, None, None, wall_s, self.agent_name, error=error)
        out.trajectory = Trajectory(
            task=self.task_name, seed=seed, agent=self.agent_name, messages=[],
            reward=None, error=error, wall_s=wall_s,
        )  # fmt: skip
        return out


async def _next(gen: Any) -> Any:
    ref = await gen.__anext__()
    return await ref


async def _completed(gen: Any) -> None:
    with contextlib.suppress(Exception):
        await gen.completed()
