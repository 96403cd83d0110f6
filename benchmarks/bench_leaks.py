"""Back-to-back episodes leave nothing behind: open files, memory, namespaces, cgroups, uids.

    .venv/bin/python benchmarks/bench_leaks.py [--episodes 200]

Each episode of a short task (``tests/tinytask.py``) runs in full: reset (a 1-host dev
cluster and the agent's workstation), the agent writes its answer and a ``start.sh``,
starts a process on its dev host and leaves it running, and submits; grading builds a
1-host cluster, starts ``start.sh`` there as a service (a process left behind too) and
scores the answer. These figures are printed during episode 1 (before its submit: the
control, what a live episode holds) and after episodes 1, N/2 and N:

- open files and memory (RSS, threads) of this process;
- what the runs of this benchmark still hold: run records, network namespaces, links,
  cgroups, mounts and directories under the data root;
- the per-run uids (:mod:`infragym.sandbox._identity`) any process of the machine still
  runs as, and those of this benchmark's runs.

Run ids, and with them uids, are claimed per run and released at teardown; a leak shows
as growth from the first checkpoint to the last (memory may settle after the first
episodes: the interpreter's caches).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from infragym.env import Env, ToolCall, make
from infragym.sandbox import _cgroup, _state
from infragym.sandbox._identity import is_run_uid, run_uid
from infragym.sandbox._sys import list_links, list_netns, mounts_under

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tinytask import tiny_task

# starts the submitted start.sh on the grading host as a service, as a real task starts
# the agent's system, and names its cluster
GRADER = """
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    c = ctx.cluster(1)
    host = c.hosts[0]
    host.spawn("app", ["sh", "start.sh"], cwd="/srv/app")
    r = host.run(["sh", "-c", "cat /srv/app/answer.txt 2>/dev/null"], timeout=10)
    ok = r.stdout.strip() == b"42"
    result = CheckResult("answer", Verdict.PASS if ok else Verdict.FAIL, float(ok), "answer")
    reward = Rubric([Criterion("answer")]).score({"answer": result})
    return GradeOutcome(reward, reward.reward, notes=[f"cluster {c.run_id}"])
"""
START = "exec sleep 1000\n"


async def episode(env: Env, seed: int, live: dict[str, dict[str, int]]) -> tuple[float, list[str]]:
    """Play one episode; the figures of episode 1 mid-way go to ``live`` (the control:
    what a run holds while it runs, which the checkpoints must not show)."""
    await env.reset(seed=seed)
    ids = [r.run_id for r in (env.workstation, env.dev_cluster) if r is not None]
    await env.step(ToolCall("write_file", {"path": "answer.txt", "content": "42\n"}))
    await env.step(ToolCall("write_file", {"path": "start.sh", "content": START}))
    left = {"host": "n1", "command": "sleep 1000", "background": True}
    await env.step(ToolCall("host_bash", left))
    if seed == 1:
        live["during 1"] = figures(set(ids))
    r = await env.step(ToolCall("submit", {}))
    grade = r.info.get("grade")
    if grade is None or grade.error:
        raise SystemExit(f"episode {seed} was not graded: {grade}")
    grading = [n.split()[1] for n in grade.notes if n.startswith("cluster ")]
    return float(r.reward or 0.0), ids + grading


def _proc_uids() -> list[int]:
    uids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Uid:"):
                    uids.append(int(line.split()[1]))
                    break
        except (OSError, ValueError):
            continue
    return uids


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def figures(runs: set[str]) -> dict[str, int]:
    uids = _proc_uids()
    ours = {run_uid(r) for r in runs}
    data = [p for p in _state.DATA_ROOT.iterdir()] if _state.DATA_ROOT.exists() else []
    return {
        "open files": len(os.listdir("/proc/self/fd")),
        "RSS KiB": _status("VmRSS"),
        "threads": _status("Threads"),
        "run records": sum(1 for r in _state.all_records() if r.run_id in runs),
        "netns": sum(1 for n in list_netns() if _state.run_id_of_netns(n) in runs),
        "links": sum(1 for n in list_links() if _state.run_id_of_link(n) in runs),
        "cgroups": sum(len(_cgroup.run_cgroups(r)) for r in runs),
        "mounts": sum(len(mounts_under(str(_state.DATA_ROOT / r))) for r in runs),
        "run dirs": sum(1 for p in data if p.name in runs),
        "procs, our uids": sum(1 for u in uids if u in ours),
        "procs, any run uid": sum(1 for u in uids if is_run_uid(u)),
        "runs so far": len(runs),
    }


async def main_async(episodes: int) -> None:
    checkpoints = sorted({1, max(1, episodes // 2), episodes})
    rows: dict[str, dict[str, int]] = {}
    runs: set[str] = set()
    rewards: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        task = tiny_task(Path(tmp), name="leaks", grader=GRADER)
        env = make(str(task), artifacts_dir=Path(tmp) / "artifacts")
        t0 = time.monotonic()
        for i in range(1, episodes + 1):
            reward, ids = await episode(env, i, rows)
            rewards.append(reward)
            runs.update(ids)
            if i in checkpoints:
                rows[f"after {i}"] = figures(runs)
                print(f"episode {i}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        await env.close()
    print(f"{'episode':<20}" + "".join(f"{c:>11}" for c in rows))
    for k in rows["during 1"]:
        print(f"{k:<20}" + "".join(f"{row[k]:>11}" for row in rows.values()))
    print(f"rewards: min {min(rewards):.2f} max {max(rewards):.2f} over {len(rewards)} episodes")
    print(f"{(time.monotonic() - t0) / episodes:.2f} s per episode")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=200)
    episodes = ap.parse_args().episodes
    if os.geteuid() != 0:
        sys.exit("needs root")
    asyncio.run(main_async(episodes))
