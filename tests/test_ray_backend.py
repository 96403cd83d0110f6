"""Episodes on a real Ray cluster: two nodes on this machine, one killed in the middle of a
run; every episode is done exactly once, with the rewards a local run gives."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_no_leftovers, needs_root
from raycluster import ray_tmpdir
from tinytask import seeded_grader, tiny_task

from infragym import ConfigError, rollout_many
from infragym.agent import noop_agent, reference_agent
from infragym.runner import EPISODE_RESOURCE, TRAJECTORIES_FILE, read_run, read_trajectories
from infragym.sandbox import _state, cleanup
from infragym.tasks import find_task

ray = pytest.importorskip("ray")
pytestmark = needs_root

# each episode takes a few seconds (its grading sleeps), so a node can be killed while its
# episodes run
GRADER = seeded_grader(sleep_s=3.0, slow_until=1 << 30)
SEEDS = list(range(1, 9))
FAST_DEATH = {  # the head declares a silent node dead within ~1.5 s (default ~30 s)
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}


def owned_by(pids: set[int]) -> list[str]:
    return [r.run_id for r in _state.all_records() if r.owner_pid in pids]


def test_an_unpicklable_agent_factory_is_refused_before_anything_runs(tmp_path: Path) -> None:
    task = str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER))
    lock = threading.Lock()  # a factory's closure over a live object cannot travel

    def factory() -> Any:
        with lock:
            return noop_agent()

    with pytest.raises(ConfigError, match=r"cannot be sent to Ray's workers \(TypeError: .*lock"):
        asyncio.run(rollout_many(task, factory, [1, 2], backend="ray",
                                 artifacts_dir=tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # no store, no episode
    assert not ray.is_initialized()  # and no cluster was started or joined


def test_node_resources_and_the_run_options_of_ray(tmp_path: Path) -> None:
    from infragym.grading import default_concurrency
    from infragym.tasks import list_tasks

    cli = [sys.executable, "-m", "infragym.cli.main"]
    r = subprocess.run([*cli, "node-resources"], capture_output=True, text=True, check=True)
    costliest = max(t.spec.grading_cores for t in list_tasks())
    assert json.loads(r.stdout) == {EPISODE_RESOURCE: default_concurrency(costliest)}
    r = subprocess.run([*cli, "run", "kv-replicated", "--address", "auto", "--out",
                        str(tmp_path / "x")], capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "--address and --max-retries are for --backend ray" in r.stderr
    assert not (tmp_path / "x").exists()


def test_the_cli_runs_on_a_local_ray_cluster_it_starts_and_stops(tmp_path: Path) -> None:
    task = str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER))
    out = tmp_path / "run"
    with ray_tmpdir():
        r = subprocess.run(
            [sys.executable, "-m", "infragym.cli.main", "run", task, "--agent",
             "reference:robust", "--seeds", "5-7", "--backend", "ray", "--out", str(out),
             "--json"],
            capture_output=True, text=True, timeout=240, check=False,
            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert {e["seed"]: e["reward"] for e in doc["episodes"]} == {5: 0.5, 6: 0.75, 7: 1.0}
    with read_run(out) as store:
        rows = store.episodes()
    assert [(e.status, e.attempts) for e in rows] == [("done", 1)] * 3
    assert all(e.info["node_id"] for e in rows)  # where each ran is recorded
    assert sorted(t.seed for t in read_trajectories(out / TRAJECTORIES_FILE)) == [5, 6, 7]


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[Any, Any, Any]]:
    """A Ray cluster of two nodes on this machine, each with 2 episode slots (the last
    test kills the second)."""
    from ray.cluster_utils import Cluster

    with ray_tmpdir():
        small = {"num_cpus": 1, "object_store_memory": 80 << 20, "include_dashboard": False}
        cluster = Cluster(initialize_head=True, head_node_args={
            **small, "resources": {EPISODE_RESOURCE: 2}, "_system_config": FAST_DEATH})
        try:
            victim = cluster.add_node(**small, resources={EPISODE_RESOURCE: 2})
            yield cluster, cluster.head_node, victim
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()


def test_a_factory_a_node_cannot_load_stops_the_run_with_a_clear_error(
        tmp_path: Path, two_nodes: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A module-level function travels by name: a module only the driver has (written,
    imported, then gone, as on a node without it) cannot be loaded on the node."""
    task = str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER))
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "igray_only_here.py").write_text(
        "from infragym.agent import noop_agent\n\ndef factory():\n    return noop_agent()\n")
    monkeypatch.syspath_prepend(str(mods))
    import igray_only_here  # type: ignore[import-not-found]

    shutil.rmtree(mods)
    try:
        with pytest.raises(ConfigError, match=r"on node .* the agent factory could not be "
                           r"loaded or called \(ModuleNotFoundError: No module named "
                           r"'igray_only_here'"):
            asyncio.run(rollout_many(task, igray_only_here.factory, [1, 2], backend="ray",
                                     ray_address=two_nodes[0].address))
    finally:
        sys.modules.pop("igray_only_here", None)


def test_an_interrupted_ray_run_tears_its_episodes_down_on_their_nodes_and_resumes(
        tmp_path: Path, two_nodes: tuple[Any, Any, Any]) -> None:
    cluster = two_nodes[0]
    spec = find_task(str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER)))
    out = tmp_path / "run"
    seeds = [1, 2, 3]
    workers: dict[int, int] = {}

    def progress(seed: int, message: str) -> None:
        if message.startswith("started on node"):
            workers[seed] = int(message.rsplit(" ", 1)[1])

    def run(on_progress: Any = None) -> Any:
        return rollout_many(str(spec.path), lambda: reference_agent(spec, "robust"), seeds,
                            backend="ray", ray_address=cluster.address, artifacts_dir=out,
                            on_progress=on_progress)

    async def interrupted() -> None:
        job = asyncio.ensure_future(run(progress))
        while len(workers) < 3 and not job.done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # each is in its agent phase or grading, sandboxes up
        job.cancel()  # what SIGINT does to `infragym run` (its main task is cancelled)
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(interrupted())
    assert len(workers) == 3
    assert not owned_by(set(workers.values()))  # torn down on their nodes before it left
    with read_run(out) as store:
        assert store.counts()["running"] == 3  # as a killed local run leaves them

    outs = asyncio.run(run())  # the same run resumes: each episode once, on a 2nd attempt
    assert {o.seed: o.reward for o in outs} == {1: 0.5, 2: 0.75, 3: 1.0}
    with read_run(out) as store:
        assert [(e.status, e.attempts) for e in store.episodes()] == [("done", 2)] * 3
    assert sorted(t.seed for t in read_trajectories(out / TRAJECTORIES_FILE)) == seeds


def test_a_node_killed_mid_run_has_its_episodes_retried_on_the_other_once_each(
        tmp_path: Path, two_nodes: tuple[Any, Any, Any]) -> None:
    cluster, head, victim = two_nodes
    spec = find_task(str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER)))
    task = str(spec.path)
    out = tmp_path / "run"
    started: dict[int, list[tuple[str, int]]] = {}  # seed -> (node id, worker pid) per attempt
    messages: list[str] = []
    killed: dict[str, Any] = {}

    def kill() -> None:
        """The victim node, and the worker of one episode running on the head node."""
        running = {s: a[-1] for s, a in started.items() if len(a) == 1}
        on_victim = [s for s, (n, _) in running.items() if n == victim.node_id]
        on_head = [s for s, (n, _) in running.items() if n == head.node_id]
        killed.update(victim_seeds=on_victim, head_seed=on_head[0],
                      victim_pids={started[s][0][1] for s in on_victim})
        os.kill(started[on_head[0]][0][1], signal.SIGKILL)  # a worker dies, its node lives
        cluster.remove_node(victim, allow_graceful=False)  # raylet and workers: SIGKILL

    def progress(seed: int, message: str) -> None:
        messages.append(f"{seed}: {message}")
        if message.startswith("started on node"):
            node_id = next(n for n in (head.node_id, victim.node_id) if n[:12] in message)
            started.setdefault(seed, []).append((node_id, int(message.rsplit(" ", 1)[1])))
            nodes = {a[0][0] for a in started.values()}
            if not killed and len(started) >= 4 and len(nodes) == 2:
                killed["at"] = True  # once: 1 s on, every first wave's episode is mid-run
                asyncio.get_running_loop().call_later(1.0, kill)

    t0 = time.monotonic()
    outs = asyncio.run(rollout_many(
        task, lambda: reference_agent(spec, "robust"), SEEDS, backend="ray",
        ray_address=cluster.address, artifacts_dir=out, on_progress=progress))
    ray_s = time.monotonic() - t0
    assert not ray.is_initialized()  # the driver left the cluster it joined
    assert killed.get("victim_seeds"), (killed, messages)

    # every episode done exactly once, the lost ones on a second attempt on the head node
    with read_run(out) as store:
        rows = {e.seed: e for e in store.episodes()}
        counts = store.counts()
    assert counts == {"pending": 0, "running": 0, "done": 8, "platform-failed": 0}, messages
    lost = {*killed["victim_seeds"], killed["head_seed"]}
    for s, e in rows.items():
        assert e.attempts == (2 if s in lost else 1), (s, e.attempts, messages)
        if s in lost:
            assert e.info["node_id"] == head.node_id
            assert [n for n, _ in started[s]] == [started[s][0][0], head.node_id]
    assert any(f"{s}: attempt lost on node" in m and "retrying (1 of 2 retries)" in m
               for s in killed["victim_seeds"] for m in messages), messages
    lines = list(read_trajectories(out / TRAJECTORIES_FILE))
    assert sorted(t.seed for t in lines) == SEEDS and len({t.id for t in lines}) == 8

    # the rewards of a local run of the same seeds
    t1 = time.monotonic()
    local = asyncio.run(rollout_many(task, lambda: reference_agent(spec, "robust"), SEEDS, 4))
    local_s = time.monotonic() - t1
    expected = {o.seed: o.reward for o in local}
    assert expected == {s: (s % 4 + 1) / 4 for s in SEEDS}
    assert {o.seed: o.reward for o in outs} == expected
    assert {s: e.reward for s, e in rows.items()} == expected

    # the killed worker's sandboxes on the surviving node were removed by the driver; the
    # dead node's are swept as `infragym cleanup` would on that machine
    head_pid = started[killed["head_seed"]][0][1]
    assert not owned_by({head_pid}), messages
    assert any("sandbox run(s) removed from the node" in m for m in messages), messages
    for pid in killed["victim_pids"]:
        for run_id in cleanup(owner_pid=pid).runs:
            assert_no_leftovers(run_id)
    workers = {p for a in started.values() for _, p in a}
    assert not owned_by(workers)
    print(f"\n8 episodes: {ray_s:.1f} s on Ray with a node killed, {local_s:.1f} s locally")
    print("\n".join(messages))
