"""What the grading health check measures at 1, 4 and 8 concurrent gradings.

    .venv/bin/python benchmarks/bench_health.py [--task kv-replicated] [--tier robust]
                                                [--concurrency 1 4 8]

For each concurrency C, C gradings of the task's reference solution (seeds 1..C) run at
once in one process, as ``rollout_many`` runs them. Printed per grading: the reward (or
the withheld one, marked ``!``), the share of operations that started over 100 ms late,
the 99th percentile start lag and the CPU stall share of the load window (PSI). The idle
machine's CPU pressure is printed first as the baseline (other work on the machine shows
there).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from infragym.grading import GradeResult, grade_workspace
from infragym.grading._health import Monitor
from infragym.tasks import find_task


async def idle_baseline(seconds: float = 10.0) -> float | None:
    async with Monitor() as psi:
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
    return psi.stall(t0, time.monotonic())


async def at(
    task_name: str, tier: str, c: int, art: Path, workers: int | None
) -> list[GradeResult]:
    if workers:
        from concurrent.futures import ThreadPoolExecutor

        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers))
    task = find_task(task_name)
    ws = task.solution(tier)
    return await asyncio.gather(
        *(grade_workspace(task, ws, seed, art / f"c{c}-s{seed}") for seed in range(1, c + 1))
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="kv-replicated")
    ap.add_argument("--tier", default="robust")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--workers", type=int, help="size of the default thread pool")
    ap.add_argument("--keep", help="keep the gradings' artifacts in this directory")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp_:
        tmp = args.keep or tmp_
        for c in args.concurrency:
            idle = asyncio.run(idle_baseline())
            print(f"idle 10 s before: CPU stall {idle if idle is None else f'{idle:.0%}'}")
            t0 = time.monotonic()
            results = asyncio.run(at(args.task, args.tier, c, Path(tmp), args.workers))
            wall = time.monotonic() - t0
            rows = []
            for r in results:
                h = r.health or {}
                reward = r.reward if r.reward is not None else r.withheld_reward
                mark = "!" if r.overloaded else (" E" if r.error else "")
                stall = h.get("cpu_stall")
                rows.append((h.get("late_fraction", float("nan")), stall))
                print(
                    f"  C={c} seed={r.seed} reward={reward}{mark} "
                    f"late={h.get('late_fraction', float('nan')):.1%} "
                    f"late2s={h.get('late_peak') or 0:.0%} "
                    f"p99lag={h.get('start_lag_p99_s', float('nan')) * 1000:.0f}ms "
                    f"maxlag={h.get('start_lag_max_s', float('nan')) * 1000:.0f}ms "
                    f"stall={'-' if stall is None else f'{stall:.0%}'} "
                    f"peak={h.get('cpu_stall_peak') or 0:.0%} "
                    f"faultlag={h.get('fault_lag_max_s') or 0:.2f}s "
                    f"poollag={h.get('pool_lag_max_s') or 0:.2f}s "
                    f"gc={h.get('gc_pause_max_s') or 0:.2f}s ops={h.get('ops')}"
                    + (f" error={r.error[:80]}" if r.error and not r.overloaded else "")
                )
            lates = [x for x, _ in rows]
            stalls = [s for _, s in rows if s is not None]
            print(
                f"C={c}: wall {wall:.0f} s, late max {max(lates):.1%} "
                f"median {statistics.median(lates):.1%}, stall max "
                f"{max(stalls) if stalls else float('nan'):.0%}, overloaded "
                f"{sum(r.overloaded for r in results)}/{c}",
                flush=True,
            )


if __name__ == "__main__":
    main()
