"""Runs that survive: a run directory's store (run.sqlite) resumes a killed run, refuses
another configuration, and `infragym runs DIR` shows where a run stands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import assert_no_leftovers, needs_root
from tinytask import seeded_grader, tiny_task

from infragym import ConfigError, rollout_many
from infragym.agent import noop_agent
from infragym.runner import TRAJECTORIES_FILE, read_trajectories
from infragym.sandbox import cleanup

if TYPE_CHECKING:
    from infragym.runner import EpisodeRecord

pytestmark = needs_root

INFRAGYM = [sys.executable, "-m", "infragym.cli.main"]

# seeds 1-6 grade slowly enough to kill a run in the middle of one; seed 13 fails
GRADER = seeded_grader(sleep_s=1.0, slow_until=6, fail=13)


def infragym(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INFRAGYM, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, "COLUMNS": "200"})


def state_of(run_dir: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    from infragym.runner import read_run

    with read_run(run_dir) as store:
        return store.config(), [e.summary() for e in store.episodes()]


def runs_json(run_dir: Path) -> dict[str, object]:
    r = infragym("runs", str(run_dir), "--json")
    assert r.returncode == 0, r.stderr
    doc: dict[str, object] = json.loads(r.stdout)
    return doc


def jsonl_seeds(run_dir: Path) -> list[int]:
    return sorted(t.seed for t in read_trajectories(run_dir / TRAJECTORIES_FILE))


def test_a_killed_run_resumes_with_every_episode_once_and_the_same_rewards(
        tmp_path: Path) -> None:
    from infragym.runner import read_run

    task = str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER))
    seeds = [1, 2, 3, 4, 5, 6]
    out = tmp_path / "run"
    # one at a time (the default runs as many as gradings fit): one episode is mid-run
    cmd = [*INFRAGYM, "run", task, "--agent", "reference:robust", "--seeds", "1-6",
           "--concurrency", "1", "--out", str(out)]
    log = (tmp_path / "killed.log").open("w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        counts: dict[str, int] = {}
        running: list[EpisodeRecord] = []
        while time.monotonic() < deadline and p.poll() is None:
            if (out / "run.sqlite").exists():
                try:
                    with read_run(out) as store:
                        counts = store.counts()
                        running = [e for e in store.episodes() if e.status == "running"]
                except ConfigError:
                    counts, running = {}, []  # the store is being created
                # kill mid-episode: it started 0.2 s ago and its grading alone takes 1 s
                if counts.get("done", 0) >= 2 and running and running[0].started_at and (
                        time.time() - running[0].started_at > 0.2):
                    break
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait(timeout=30)
        log.close()
    swept = cleanup(owner_pid=p.pid)  # the killed episode's sandbox, nobody else's
    for run_id in swept.runs:
        assert_no_leftovers(run_id)
    with read_run(out) as store:
        before = {e.seed: e for e in store.episodes()}
    killed = [s for s, e in before.items() if e.status == "running"]
    done_before = sorted(s for s, e in before.items() if e.status == "done")
    assert len(killed) == 1 and 2 <= len(done_before) < 6, (before, counts)
    # a finished episode's line is written after its row commits: at most one missing
    assert set(jsonl_seeds(out)) <= set(done_before)
    (out / f"seed{killed[0]}" / "from-the-dead-attempt").write_text("x")

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("kept from the interrupted run") == len(done_before)
    state = runs_json(out)
    assert state["counts"] == {"pending": 0, "running": 0, "done": 6, "platform-failed": 0}
    episodes = {e["seed"]: e for e in state["episodes"]}  # type: ignore[attr-defined]
    for s in seeds:  # kept episodes were not rerun; the killed one ran again, from scratch
        assert episodes[s]["attempts"] == (2 if s == killed[0] else 1), episodes[s]
        if s in done_before:
            assert episodes[s]["finished_at"] == before[s].finished_at
    assert not (out / f"seed{killed[0]}" / "from-the-dead-attempt").exists()
    assert jsonl_seeds(out) == seeds  # every episode exactly once
    trajs = list(read_trajectories(out / TRAJECTORIES_FILE))
    assert len({t.id for t in trajs}) == 6

    whole = tmp_path / "uninterrupted"
    r = subprocess.run([*cmd[:-1], str(whole), "--concurrency", "3"], capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = {t.seed: t.reward for t in read_trajectories(whole / TRAJECTORIES_FILE)}
    assert expected == {s: (s % 4 + 1) / 4 for s in seeds}
    assert {t.seed: t.reward for t in trajs} == expected
    assert {s: e["reward"] for s, e in episodes.items()} == expected


def test_another_configuration_in_the_same_directory_is_refused_and_nothing_changes(
        tmp_path: Path) -> None:
    task = str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER))
    out = tmp_path / "run"
    r = infragym("run", task, "--agent", "noop", "--seeds", "21,22", "--out", str(out))
    assert r.returncode == 0, r.stderr
    state = state_of(out)
    lines = (out / TRAJECTORIES_FILE).read_bytes()
    files = sorted(p.name for p in out.iterdir())

    r = infragym("run", task, "--agent", "reference:robust", "--seeds", "21,22",
                 "--out", str(out))
    assert r.returncode == 2
    assert 'agent: "noop" there, "reference:robust" here' in r.stderr, r.stderr
    assert "resume it with the same task, agent, seeds and options" in r.stderr
    with pytest.raises(ConfigError, match=r"seeds: \[21, 22\] there, \[21, 22, 23\] here"):
        asyncio.run(rollout_many(task, noop_agent, [21, 22, 23], 1, artifacts_dir=out))
    with pytest.raises(ConfigError, match=r"env_options: .*there.*here"):
        asyncio.run(rollout_many(task, noop_agent, [21, 22], 1, artifacts_dir=out, max_steps=3))
    assert state_of(out) == state
    assert (out / TRAJECTORIES_FILE).read_bytes() == lines
    assert sorted(p.name for p in out.iterdir() if "run.sqlite-" not in p.name) == [
        f for f in files if "run.sqlite-" not in f]

    # the same configuration resumes: nothing left to run, nothing recorded twice
    outs = asyncio.run(rollout_many(task, noop_agent, [22, 21], 2, artifacts_dir=out))
    assert [(o.seed, o.kept, o.reward) for o in outs] == [(22, True, 0.0), (21, True, 0.0)]
    assert (out / TRAJECTORIES_FILE).read_bytes() == lines

    stray = tmp_path / "not-a-run"  # a non-empty directory that is no run: refused as ever
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    r = infragym("run", task, "--agent", "noop", "--out", str(stray))
    assert r.returncode == 2 and f"--out {stray} is not empty" in r.stderr
    assert [p.name for p in stray.iterdir()] == ["notes.txt"]


def test_runs_lists_a_runs_state_and_a_platform_failure_is_retried_on_resume(
        tmp_path: Path) -> None:
    task = str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER))
    out = tmp_path / "run"
    r = infragym("run", task, "--agent", "reference:robust", "--seeds", "12,13",
                 "--out", str(out))
    assert r.returncode == 2  # a platform failure
    r = infragym("runs", str(out))
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert f"run {out}" in text and "agent: reference:robust" in text and "task: tiny" in text
    assert "0 pending, 0 running, 1 done, 1 platform-failed" in text
    rows = {ln.split()[1]: ln for ln in text.splitlines() if ln.strip().startswith("│")}
    assert "done" in rows["12"] and "0.250" in rows["12"]  # (12 % 4 + 1) / 4
    assert "platform-failed" in rows["13"] and "grader bug on seed 13" in text
    state = runs_json(out)
    assert state["config"]["seeds"] == [12, 13]  # type: ignore[index]
    assert state["config"]["model"] is None  # type: ignore[index]
    e13 = state["episodes"][1]  # type: ignore[index]
    assert (e13["seed"], e13["status"], e13["reward"], e13["attempts"]) == (
        13, "platform-failed", None, 1)
    assert e13["artifacts_dir"] == str(out / "seed13")

    # resuming retries the platform failure (the platform's, not the agent's), keeps seed 12
    r = infragym("run", task, "--agent", "reference:robust", "--seeds", "12,13",
                 "--out", str(out))
    assert r.returncode == 2
    eps = state_of(out)[1]
    assert [(e["seed"], e["status"], e["attempts"]) for e in eps] == [
        (12, "done", 1), (13, "platform-failed", 2)]
    assert jsonl_seeds(out) == [12, 13]

    r = infragym("runs", str(tmp_path))
    assert r.returncode == 2 and "holds no run store" in r.stderr


def test_a_crash_between_commit_and_line_neither_loses_nor_duplicates_an_episode(
        tmp_path: Path) -> None:
    """The run died after committing seed 32 but before its whole line was written: the
    resume writes trajectories.jsonl anew from the store, each finished episode once."""
    task = str(tiny_task(tmp_path, dev_hosts=0, grader=GRADER))
    out = tmp_path / "run"
    first = asyncio.run(rollout_many(task, noop_agent, [31, 32], 1, artifacts_dir=out))
    path = out / TRAJECTORIES_FILE
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    path.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # torn last line
    again = asyncio.run(rollout_many(task, noop_agent, [31, 32], 1, artifacts_dir=out))
    assert all(o.kept for o in again)
    assert path.read_text().splitlines() == lines  # each once, as first written
    assert [o.trajectory.id for o in again if o.trajectory] == [
        o.trajectory.id for o in first if o.trajectory]
