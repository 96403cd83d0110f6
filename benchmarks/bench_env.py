"""Env reset and per-step overhead, against floors measured in the same run.

    .venv/bin/python benchmarks/bench_env.py [--repeats 15] [--steps 100]

reset: a full episode start of a tiny task (workspace, workstation sandbox, and a 1-host dev
cluster or none), beside the bare dev cluster start it contains. step: ``bash("true")``
through ``Env.step`` beside the same ``bash -c true`` run by a bare ``subprocess.run`` (the
floor) and by the workstation alone (the sandbox's share: cgroup, namespace, bubblewrap,
setpriv). Runs are interleaved so machine noise hits all alike; figures are medians.
Targets: reset <= 100 ms; step overhead over the floor <= 15 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infragym.env import Env, ToolCall, make
from infragym.sandbox import Cluster

TASK_TOML = """
name = "bench"
summary = "A tiny task for benchmarks."
[topology]
hosts = 1
dev_hosts = {dev_hosts}
[limits]
max_steps = 100000
"""


def tiny_task(root: Path, dev_hosts: int) -> Path:
    d = root / f"dev{dev_hosts}" / "bench"
    (d / "workspace").mkdir(parents=True)
    (d / "solutions" / "x").mkdir(parents=True)
    (d / "task.toml").write_text(TASK_TOML.format(dev_hosts=dev_hosts))
    (d / "instructions.md").write_text("Nothing to do.\n")
    (d / "workspace" / "README").write_text("starter\n")
    (d / "grader.py").write_text("async def grade(ctx):\n    raise NotImplementedError\n")
    return d


def ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


async def bench_reset(env: Env, dev_hosts: int, repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"reset": [], "close": [], "cluster": []}
    for i in range(repeats):
        t0 = time.perf_counter()
        await env.reset(seed=i)
        out["reset"].append(ms(t0))
        t0 = time.perf_counter()
        await env.close()
        out["close"].append(ms(t0))
        if dev_hosts:
            t0 = time.perf_counter()
            c = Cluster(dev_hosts).start()
            out["cluster"].append(ms(t0))
            c.close()
    return out


async def bench_step(env: Env, steps: int) -> dict[str, list[float]]:
    await env.reset(seed=1)
    ws = env.workstation
    assert ws is not None
    out: dict[str, list[float]] = {"step": [], "workstation": [], "bare": []}
    call = ToolCall("bash", {"command": "true"})
    for _ in range(steps):
        t0 = time.perf_counter()
        r = await env.step(call)
        out["step"].append(ms(t0))
        assert r.observation.content == "(no output)\n[exit code 0]", r.observation.content
        t0 = time.perf_counter()
        await ws.exec(["bash", "-c", "true"], timeout=10)
        out["workstation"].append(ms(t0))
        t0 = time.perf_counter()
        subprocess.run(["bash", "-c", "true"], check=True)
        out["bare"].append(ms(t0))
    await env.close()
    return out


def bench_gym(task: Path, art: Path, steps: int) -> dict[str, list[float]]:
    """The same step through the Gymnasium adapter (its own event loop, in a thread):
    a JSON action parsed, the observation mapped into its text space."""
    from infragym.gym import make as gym_make

    out: dict[str, list[float]] = {"gym": [], "bare": []}
    action = '{"name": "bash", "arguments": {"command": "true"}}'
    with gym_make(str(task), artifacts_dir=art) as env:
        env.reset(seed=1)
        for _ in range(steps):
            t0 = time.perf_counter()
            obs = env.step(action)[0]
            out["gym"].append(ms(t0))
            assert obs == "(no output)\n[exit code 0]", obs
            t0 = time.perf_counter()
            subprocess.run(["bash", "-c", "true"], check=True)
            out["bare"].append(ms(t0))
    return out


async def main_async(repeats: int, steps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="infragym-bench-") as tmp:
        root = Path(tmp)
        med = statistics.median
        tasks = {n: tiny_task(root, n) for n in (0, 1, 3)}
        print(f"{'reset':<28} {'env ms':>8} {'floor ms':>9} {'ratio':>6}   floor")
        for dev_hosts in (1, 3, 0):
            env = make(str(tasks[dev_hosts]), artifacts_dir=root / "art")
            r = await bench_reset(env, dev_hosts, repeats)
            label = f"reset, {dev_hosts} dev host(s)"
            if dev_hosts:
                a, b = med(r["reset"]), med(r["cluster"])
                print(
                    f"{label:<28} {a:>8.1f} {b:>9.1f} {a / b:>6.2f}   Cluster({dev_hosts}).start()"
                )
            else:
                print(f"{label:<28} {med(r['reset']):>8.1f} {'-':>9} {'-':>6}")
            print(f"{'  close (ungraded)':<28} {med(r['close']):>8.1f}")
        env = make(str(tasks[1]), artifacts_dir=root / "art")
        s = await bench_step(env, steps)
        step, sandbox, bare = med(s["step"]), med(s["workstation"]), med(s["bare"])
        print()
        print(f"{'step bash(true)':<28} {'ms':>8} {'overhead':>9} {'ratio':>6}")
        print(f"{'bare subprocess.run':<28} {bare:>8.2f} {'-':>9} {1:>6.2f}")
        print(
            f"{'Workstation.exec':<28} {sandbox:>8.2f} {sandbox - bare:>9.2f} "
            f"{sandbox / bare:>6.2f}"
        )
        print(f"{'Env.step':<28} {step:>8.2f} {step - bare:>9.2f} {step / bare:>6.2f}")
        g = await asyncio.to_thread(bench_gym, tasks[1], root / "art", steps)
        gym, gbare = med(g["gym"]), med(g["bare"])
        print(f"{'gymnasium step (JSON text)':<28} {gym:>8.2f} {gym - gbare:>9.2f} "
              f"{gym / gbare:>6.2f}")
        print()
        print("targets: reset <= 100 ms; Env.step overhead over bare <= 15 ms (medians)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    asyncio.run(main_async(args.repeats, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
