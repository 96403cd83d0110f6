"""fleet-drift: the time of one grading against a kv-replicated grading in the same run.

    .venv/bin/python benchmarks/bench_fleet_drift.py [--seed 1] [--rounds 1]

Each round grades fleet-drift's robust reference (a config host and 6-8 fleet hosts,
the start gate, 12 drifts and two releases under probes, the checks) and kv-replicated's
robust reference, one after the other, end to end through ``grade_workspace``. Target:
fleet-drift <= 90 s on 2 cores; the ratio to kv-replicated says how it compares on this
machine at this moment (both are timed in the same run, so the machine's load is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from infragym.grading import grade_workspace
from infragym.tasks import find_task


def grading_s(name: str, seed: int) -> tuple[float, float | None]:
    task = find_task(name)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = asyncio.run(grade_workspace(task, task.solution("robust"), seed, Path(tmp)))
        return time.perf_counter() - t0, result.reward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    for r in range(args.rounds):
        fleet, fleet_reward = grading_s("fleet-drift", args.seed)
        kv, kv_reward = grading_s("kv-replicated", args.seed)
        print(
            f"round {r + 1}: fleet-drift {fleet:.1f} s (reward {fleet_reward}), "
            f"kv-replicated {kv:.1f} s (reward {kv_reward}), ratio {fleet / kv:.2f}; "
            f"target fleet-drift <= 90 s: {'met' if fleet <= 90 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
