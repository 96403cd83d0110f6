"""`serve_on_ray` on a real two-node Ray cluster on this machine: one `infragym serve` per
node that may host episodes, each answering /health, episodes played on both through
`rollout_many(..., server=...)` for the rewards a local run gives; stopped, nothing of
them is left, and a server whose actor dies goes with it.

The servers need openenv; the test's own environment may lack it (the dev extra holds
verifiers, whose mcp pin openenv's conflicts with), so they run on the interpreter of the
environment that has it: this one if it does, else ``$INFRAGYM_OPENENV_PYTHON`` or the
checkout's ``.venv-openenv`` (which ``./setup.sh test`` builds).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_no_leftovers, needs_root
from raycluster import ray_tmpdir
from tinytask import seeded_grader, tiny_task

from infragym import ConfigError
from infragym.agent import reference_agent
from infragym.remote import RemoteEnv
from infragym.runner import EPISODE_RESOURCE, rollout_many, serve_on_ray
from infragym.sandbox import _state
from infragym.tasks import find_task

ray = pytest.importorskip("ray")
pytestmark = needs_root


def openenv_python() -> str:
    if importlib.util.find_spec("openenv") is not None:
        return sys.executable
    given = os.environ.get("INFRAGYM_OPENENV_PYTHON")
    path = Path(given) if given else Path(__file__).parents[1] / ".venv-openenv/bin/python"
    if not path.exists():
        pytest.skip("no Python with openenv: ./setup.sh test builds .venv-openenv")
    return str(path)


def serve_pids(port: int) -> list[int]:
    """Processes running `infragym serve` on ``port``."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and b"--port" in argv and str(port).encode() in argv:
                found.append(int(d.name))
    return found


def gone(pids: list[int], within: float = 120) -> bool:
    deadline = time.monotonic() + within
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not any(Path(f"/proc/{p}").exists() for p in pids)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two Ray nodes on this machine, 2 episode slots each, and a third with none."""
    from ray.cluster_utils import Cluster

    with ray_tmpdir():
        small = {"num_cpus": 1, "object_store_memory": 80 << 20, "include_dashboard": False}
        c = Cluster(initialize_head=True,
                    head_node_args={**small, "resources": {EPISODE_RESOURCE: 2}})  # fmt: skip
        try:
            c.add_node(**small, resources={EPISODE_RESOURCE: 2})
            c.add_node(**small)  # hosts no episodes: gets no server
            yield c
        finally:
            if ray.is_initialized():
                ray.shutdown()
            c.shutdown()


def test_bad_arguments_are_refused_before_connecting() -> None:
    with pytest.raises(ConfigError, match="port must be 0"):
        serve_on_ray("127.0.0.1:1", port=70000)
    with pytest.raises(ConfigError, match="max_sessions must be at least 1"):
        serve_on_ray("127.0.0.1:1", max_sessions=0)
    assert not ray.is_initialized()


def test_a_server_that_cannot_start_is_a_clear_error_and_leaves_nothing(cluster: Any) -> None:
    with pytest.raises(ConfigError, match=r"an infragym serve did not start: .*No such file"):
        serve_on_ray(cluster.address, python="/nonexistent/python")
    assert not ray.is_initialized()
    with pytest.raises(ConfigError, match=r"did not start: .*this-task-does-not-exist"):
        serve_on_ray(cluster.address, tasks=["this-task-does-not-exist"],
                     python=openenv_python())  # fmt: skip
    assert not ray.is_initialized()


def test_a_server_per_episode_node_plays_episodes_and_leaves_nothing(
    tmp_path: Path, cluster: Any
) -> None:
    spec = find_task(str(tiny_task(tmp_path, dev_hosts=0, grader=seeded_grader(
        sleep_s=1.0, slow_until=1 << 30))))  # fmt: skip
    task = str(spec.path)
    servers = serve_on_ray(cluster.address, tasks=[task], python=openenv_python())
    try:
        assert len(servers) == 2 and len(set(servers)) == 2, servers
        ports = [int(u.rsplit(":", 1)[1]) for u in servers]
        pids = {p: serve_pids(p) for p in ports}
        assert all(len(v) == 2 for v in pids.values()), pids  # a keeper and its server
        for url in servers:
            with urllib.request.urlopen(url + "/health", timeout=10) as r:
                assert r.status == 200
        seeds = list(range(1, 7))
        outs = asyncio.run(rollout_many(spec.name, lambda: reference_agent(spec, "robust"), seeds,
                                        server=list(servers)))  # fmt: skip
        assert {o.seed: o.reward for o in outs} == {s: (s % 4 + 1) / 4 for s in seeds}, [
            o.error for o in outs
        ]
        assert {o.info["server"] for o in outs} == set(servers)  # both played
    finally:
        servers.stop()
    assert not ray.is_initialized()  # serve_on_ray connected, so stop() disconnected
    every = [p for v in pids.values() for p in v]
    assert gone(every), "a server outlived stop()"
    assert not [r.run_id for r in _state.all_records() if r.owner_pid in every]
    servers.stop()  # again: nothing to do
    assert not list(Path(tempfile.gettempdir()).glob("infragym-serve-*")), "a log was left"


def test_a_server_ends_with_its_actor_and_a_connected_caller_stays_connected(
    tmp_path: Path, cluster: Any
) -> None:
    """Connected by the caller: serve_on_ray uses that connection and leaves it. An actor
    killed under its server (as when its node's worker dies) takes the server with it,
    and its episode's sandboxes are removed (the server ends its episodes at SIGTERM)."""
    tiny_task(tmp_path, dev_hosts=0)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        with serve_on_ray(tasks=[str(tmp_path / "tiny")], max_sessions=1,
                          python=openenv_python()) as servers:  # fmt: skip
            assert len(servers) == 2
            port = int(servers[0].rsplit(":", 1)[1])
            pids = serve_pids(port)
            runs: list[str] = []

            async def kill_under_an_episode() -> None:
                env = RemoteEnv(servers[0], "tiny")
                await env.reset(seed=1)
                runs.extend(r.run_id for r in _state.all_records() if r.owner_pid in pids)
                assert runs, "the episode made no sandbox"
                ray.kill(servers._actors[0])  # the actor's process dies; PDEATHSIG: SIGTERM
                assert await asyncio.to_thread(gone, pids), "the server outlived its actor"
                with contextlib.suppress(Exception):  # its server is gone
                    await env.close()

            asyncio.run(kill_under_an_episode())
            for run_id in runs:
                assert_no_leftovers(run_id)
        assert ray.is_initialized()  # the caller's connection stays
    finally:
        ray.shutdown()
