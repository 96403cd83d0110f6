"""Gradings in a long-lived process, with and without the collector kept out of them.

    .venv/bin/python benchmarks/bench_collector.py [--objects 2] [--gradings 4]

A test session or a trainer holds millions of objects and keeps making more; a full
collection then stops every grading of the process at once (a CI run: 0.46 s, a robust
grading's reward 0.947). Each mode runs in a fresh process that first holds ``--objects``
million tracked objects and, while it grades, keeps adding 20,000 a second that live on.
``frozen`` is the platform as it is (``grading/_collector.py``); ``plain`` replaces
``quiet_collector`` with a no-op. Printed per grading: reward (``!`` withheld), the
longest start lag, the late share of the worst 2 s, the longest collection in the load
window; then per mode the longest collection of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def child(mode: str, objects: float, gradings: int, out: Path) -> None:
    from infragym.grading import _collector, _pipeline, grade_workspace
    from infragym.tasks import find_task

    held = [{"a": [i]} for i in range(int(objects * 1e6) // 2)]
    grown: list[Any] = []
    if mode == "plain":
        _pipeline.quiet_collector = contextlib.nullcontext  # type: ignore[assignment]
        gc.callbacks.append(_collector._timed)  # time collections as the platform does

    async def grow() -> None:
        while True:
            grown.append([{"x": [i]} for i in range(1000)])
            await asyncio.sleep(0.1)

    async def run() -> list[Any]:
        task = find_task("kv-replicated")
        ws = task.solution("robust")
        grower = asyncio.create_task(grow())
        try:
            return await asyncio.gather(
                *(grade_workspace(task, ws, s, out / f"s{s}") for s in range(1, gradings + 1))
            )
        finally:
            grower.cancel()

    results = asyncio.run(run())
    rows = [
        {
            "seed": r.seed,
            "reward": r.reward if r.reward is not None else r.withheld_reward,
            "withheld": r.overloaded,
            "max_lag": (r.health or {}).get("start_lag_max_s"),
            "late2s": (r.health or {}).get("late_peak"),
            "gc": (r.health or {}).get("gc_pause_max_s"),
        }
        for r in results
    ]
    longest = max((s for _, s in _collector.PAUSES), default=0.0)
    print(json.dumps({"rows": rows, "longest": longest, "objects": len(gc.get_objects())}))
    del held


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=float, default=2.0, help="millions held before")
    ap.add_argument("--gradings", type=int, default=4)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.objects, args.gradings, Path(args.out))
        return
    for mode in ("plain", "frozen"):
        with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--out",
                tmp,
                "--objects",
                str(args.objects),
                "--gradings",
                str(args.gradings),
            ]
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                sys.exit(f"{mode}: the grading process failed:\n{done.stderr[-2000:]}")
            report = json.loads(done.stdout.strip().splitlines()[-1])
        for r in report["rows"]:
            print(
                f"  {mode:6} seed={r['seed']} reward={r['reward']:.3f}"
                f"{'!' if r['withheld'] else ''}"
                f" maxlag={r['max_lag'] or 0:.2f}s late2s={r['late2s'] or 0:.0%}"
                f" gc={r['gc'] or 0:.2f}s"
            )
        print(
            f"{mode}: longest collection {report['longest']:.2f} s "
            f"({report['objects'] / 1e6:.1f} M objects at the end)",
            flush=True,
        )


if __name__ == "__main__":
    main()
