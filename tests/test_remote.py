"""infragym.remote against a real `infragym serve` (subprocess on 127.0.0.1): the runner and
the command line play episodes on remote servers for the rewards local runs earn, spread
them over several servers, wait out a server at capacity, and report a platform failure
as a failure. Runs where `infragym serve` can run (the openenv extra: `.venv-openenv`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_root
from serving import server
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym import ConfigError, ResourceError
from infragym.agent import noop_agent, reference_agent
from infragym.remote import RemoteEnv, servers_from
from infragym.runner import read_run, rollout_many
from infragym.tasks import load_task

pytest.importorskip("openenv.core", reason="`infragym serve` needs the openenv extra")

pytestmark = needs_root


def test_remote_episodes_earn_what_local_ones_earn_on_every_server(tmp_path: Path) -> None:
    """Two servers of one session each, four episodes at once: every episode waits for a
    free session, both servers play, and the rewards and the store are a local run's."""
    d = tiny_task(tmp_path, grader=WORKSPACE_GRADER)
    task = load_task(d)
    seeds = [1, 2, 3, 4]
    with (
        server(tmp_path, str(d), max_sessions=1) as (_, url_a),
        server(tmp_path, str(d), max_sessions=1) as (_, url_b),
    ):
        remote = asyncio.run(
            rollout_many(
                "tiny",
                lambda: reference_agent(task, "robust"),
                seeds,
                4,  # twice the sessions the servers have: resets wait for a free one
                artifacts_dir=tmp_path / "remote",
                server=f"{url_a},{url_b}",
            )
        )
    local = asyncio.run(rollout_many(str(d), lambda: reference_agent(task, "robust"), seeds, 2))
    assert [o.reward for o in remote] == [o.reward for o in local] == [1.0] * 4
    assert all(o.error is None and o.grade and o.grade.breakdown == {"answer": 1.0}
               for o in remote)  # fmt: skip
    run = read_run(tmp_path / "remote")
    try:
        assert run.config()["servers"] == [url_a, url_b]
        stored = [(e.seed, e.status, e.reward) for e in run.episodes()]
        assert stored == [(s, "done", 1.0) for s in seeds]
    finally:
        run.close()
    assert {o.info["server"] for o in remote} == {url_a, url_b}  # both played


def test_a_noop_and_a_failing_grader_remotely_are_a_zero_and_a_platform_failure(
    tmp_path: Path,
) -> None:
    good = tiny_task(tmp_path / "g", grader=WORKSPACE_GRADER)
    bad = tiny_task(
        tmp_path / "b",
        name="tiny-bad",
        grader="async def grade(ctx):\n    raise RuntimeError('boom')\n",
    )
    with server(tmp_path, str(good), str(bad)) as (_, url):
        (noop,) = asyncio.run(rollout_many("tiny", noop_agent, [1], server=url))
        (failed,) = asyncio.run(rollout_many("tiny-bad", noop_agent, [1], server=url))
    assert noop.reward == 0.0 and noop.error is None
    assert failed.reward is None and failed.error is not None
    assert "grading failed" in failed.error and "boom" in failed.error, failed.error


def test_the_command_line_plays_on_a_server(tmp_path: Path) -> None:
    d = tiny_task(tmp_path, grader=WORKSPACE_GRADER)
    with server(tmp_path, str(d)) as (_, url):
        r = subprocess.run(
            [sys.executable, "-m", "infragym.cli.main", "run", str(d), "--agent",
             "reference:robust", "--seeds", "1-2", "--server", url, "--json",
             "--out", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    episodes = json.loads(r.stdout)["episodes"]
    assert [e["reward"] for e in episodes] == [1.0, 1.0]


def test_bad_servers_and_options_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an http"):
        servers_from("ftp://x:1")
    with pytest.raises(ConfigError, match="listed twice"):
        servers_from("http://a:1,http://a:1")
    with pytest.raises(ConfigError, match="no server given"):
        servers_from(" , ")
    with pytest.raises(ConfigError, match="sandbox_limits cannot be set on a remote server"):
        asyncio.run(
            rollout_many("tiny", noop_agent, [1], server="http://127.0.0.1:9", sandbox_limits=None)
        )

    async def unreachable() -> None:
        async with RemoteEnv("http://127.0.0.1:9", "tiny", capacity_wait_s=0) as env:
            await env.reset(seed=1)

    with pytest.raises(ResourceError, match="cannot reach the infragym server"):
        asyncio.run(unreachable())
