"""Back-to-back episodes leave nothing behind: open files, memory, namespaces, cgroups, uids.

    .venv/bin/python benchmarks/bench_leaks.py [--episodes 200]

Each episode of a short task runs in full: reset (a 1-host dev cluster and the agent's
workstation), the agent writes its answer, starts a process on its dev host and leaves it
running, and submits; grading builds a 1-host cluster, runs the answer there (with a
process left behind too) and scores it. After episodes 1, N/2 and N the figures of this
process and of the machine are printed side by side:

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

TASK_TOML = """
name = "leaks"
summary = "Write the answer to a file."
[topology]
hosts = 1
dev_hosts = 1
[limits]
max_steps = 20
command_timeout_s = 10
[grading]
budget_s = 60
"""

GRADER = """
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    c = ctx.cluster(1)
    host = c.hosts[0]
    host.spawn("left", ["sleep", "1000"])
    r = host.run(["sh", "-c", "cat /srv/app/answer.txt 2>/dev/null"], timeout=10)
    ok = r.stdout.strip() == b"42"
    res = CheckResult("answer", Verdict.PASS if ok else Verdict.FAIL, float(ok), "answer")
    reward = Rubric([Criterion("answer")]).score({"answer": res})
    return GradeOutcome(reward, reward.reward, notes=[c.run_id])
"""


def short_task(root: Path) -> Path:
    d = root / "leaks"
    (d / "workspace").mkdir(parents=True)
    (d / "solutions" / "robust").mkdir(parents=True)
    (d / "task.toml").write_text(TASK_TOML)
    (d / "instructions.md").write_text("Write 42 to answer.txt in your workspace.\n")
    (d / "workspace" / "README").write_text("starter file\n")
    (d / "grader.py").write_text(GRADER)
    (d / "solutions" / "robust" / "answer.txt").write_text("42\n")
    return d


async def episode(env: Env, seed: int) -> tuple[float, list[str]]:
    await env.reset(seed=seed)
    ids = [r.run_id for r in (env.workstation, env.dev_cluster) if r is not None]
    await env.step(ToolCall("write_file", {"path": "answer.txt", "content": "42\n"}))
    await env.step(ToolCall("host_bash", {"host": "n1", "command": "sleep 1000 & echo"}))
    r = await env.step(ToolCall("submit", {}))
    grade = r.info.get("grade")
    if grade is None or grade.error:
        raise SystemExit(f"episode {seed} was not graded: {grade}")
    return float(r.reward or 0.0), ids + list(grade.notes)


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
    rows: dict[int, dict[str, int]] = {}
    runs: set[str] = set()
    rewards: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        task = short_task(Path(tmp))
        env = make(str(task), artifacts_dir=Path(tmp) / "artifacts")
        t0 = time.monotonic()
        for i in range(1, episodes + 1):
            reward, ids = await episode(env, i)
            rewards.append(reward)
            runs.update(ids)
            if i in checkpoints:
                rows[i] = figures(runs)
                print(f"episode {i}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        await env.close()
    keys = list(rows[checkpoints[0]])
    print(f"{'after episode':<20}" + "".join(f"{c:>10}" for c in checkpoints))
    for k in keys:
        print(f"{k:<20}" + "".join(f"{rows[c][k]:>10}" for c in checkpoints))
    print(f"rewards: min {min(rewards):.2f} max {max(rewards):.2f} over {len(rewards)} episodes")
    print(f"{(time.monotonic() - t0) / episodes:.2f} s per episode")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=200)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    asyncio.run(main_async(args.episodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
