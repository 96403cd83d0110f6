"""The time of one grading of a task, against kv-replicated's in the same run, and the
spread of the rewards when the same workspace is graded again and again.

    .venv/bin/python benchmarks/bench_grade_time.py latency-slo scale-out [--tier robust]
        [--seed 1] [--rounds 5]

Each round grades every named task's reference solution ``--tier`` on ``--seed``, one
after the other, then kv-replicated's robust reference, end to end through
``grade_workspace``. It prints each grading's time (the grading itself: the machine-wide
admission wait excluded) and reward, and at the end, per task: the median time against
the task's target on 2 cores (90 s for fleet-drift and harden-web, 120 s for the others),
the median ratio to kv-replicated's grading of the same round (both saw the same machine
at the same moment), and the rewards' spread over the rounds. Every round grades the
same workspace with the same seed, so the spread is the grading's noise alone: the suite
asks for at most 0.05.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

from infragym.grading import grade_workspace
from infragym.tasks import find_task

PEER = "kv-replicated"
TARGET_S = {"fleet-drift": 90.0, "harden-web": 90.0}
DEFAULT_TARGET_S = 120.0


def grading(name: str, tier: str, seed: int) -> tuple[float, float | None, str]:
    """(grading seconds, reward or None, the error or withheld reason)."""
    task = find_task(name)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(grade_workspace(task, task.solution(tier), seed, Path(tmp)))
    why = result.error or ("withheld: the machine was overloaded" if result.overloaded else "")
    reward = None if result.error else round(result.reward or 0.0, 3)
    return result.timings.get("grade_s", float("nan")), reward, why


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tasks", nargs="+", help="built-in task names")
    ap.add_argument("--tier", default="robust", help="the reference solution (default robust)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    times: dict[str, list[float]] = {t: [] for t in args.tasks}
    ratios: dict[str, list[float]] = {t: [] for t in args.tasks}
    rewards: dict[str, list[float | None]] = {t: [] for t in args.tasks}
    for r in range(args.rounds):
        row = {t: grading(t, args.tier, args.seed) for t in args.tasks}
        peer_s, peer_reward, _ = grading(PEER, "robust", args.seed)
        for t, (s, reward, why) in row.items():
            times[t].append(s)
            ratios[t].append(s / peer_s)
            rewards[t].append(reward)
            print(f"round {r + 1}: {t} {args.tier} {s:.1f} s, reward {reward}"
                  f"{f' ({why})' if why else ''}; {PEER} {peer_s:.1f} s (reward {peer_reward}),"
                  f" ratio {s / peer_s:.2f}", flush=True)  # fmt: skip
    print()
    for t in args.tasks:
        target = TARGET_S.get(t, DEFAULT_TARGET_S)
        med = statistics.median(times[t])
        got = [x for x in rewards[t] if x is not None]
        spread = max(got) - min(got) if got else float("nan")
        verdict = "met" if med <= target else "NOT met"
        print(f"{t}: median {med:.1f} s over {args.rounds} round(s) (target <= {target:.0f} s: "
              f"{verdict}), median ratio to {PEER} {statistics.median(ratios[t]):.2f}; "
              f"rewards {rewards[t]}, spread {spread:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
