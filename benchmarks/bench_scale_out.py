"""scale-out: the time of one grading, against a kv-replicated grading in the same run.

    .venv/bin/python benchmarks/bench_scale_out.py [--seed 1] [--rounds 1]

Each round grades scale-out's robust reference (deploy, functional tests, the capacity
ladders at 1, 2 and 4 app hosts, the live scale-out and scale-in, checks) and then
kv-replicated's robust reference, one after the other, and prints both grade times (the
admission wait excluded), their ratio, the rewards and the capacity figures. Target:
scale-out <= 120 s on 2 cores. The ratio says how much longer a scalability grading is
than the suite's reference task on the same machine at the same moment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from infragym.grading import grade_workspace
from infragym.tasks import find_task


def grading(name: str, seed: int) -> tuple[float, float | None, list[str]]:
    task = find_task(name)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(grade_workspace(task, task.solution("robust"), seed, Path(tmp)))
    reward = None if result.error else round(result.reward or 0.0, 3)
    notes = [n for n in result.notes if n.startswith(("capacity:", "scaling:"))]
    return result.timings.get("grade_s", float("nan")), reward, notes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    print(f"{'round':>5} {'scale-out s':>12} {'kv-replicated s':>16} {'ratio':>6}  rewards")
    for r in range(args.rounds):
        ours, reward, notes = grading("scale-out", args.seed)
        peer, peer_reward, _ = grading("kv-replicated", args.seed)
        print(f"{r + 1:>5} {ours:>12.1f} {peer:>16.1f} {ours / peer:>6.2f}  "
              f"{reward} / {peer_reward}")  # fmt: skip
        for n in notes:
            print(f"      {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
