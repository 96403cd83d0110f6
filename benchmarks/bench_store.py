"""The run store's cost: episodes per hour with it against without it, and its write cost
per episode against the episode's own time, measured in one run.

    .venv/bin/python benchmarks/bench_store.py [--episodes 12] [--rounds 3] [--writes 500]

The episodes are the tiny test task's (tests/tinytask.py: write 42 to a file, graded from
the workspace), the shortest real episode there is, so the store's share is as large as it
can be. "with" runs ``rollout_many`` into an artifacts directory (the store, the episode
artefacts, trajectories.jsonl); "without" runs it with no directory (no store, artefacts in
a temporary directory). Rounds alternate, so load from elsewhere hits both alike. Then the
store's own work (a row marked running, then finished with a real trajectory line, each a
committed transaction) is timed alone over ``--writes`` episodes. Target: within 2%.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from infragym.agent import reference_agent
from infragym.runner import RunStore, rollout_many, run_config
from infragym.tasks import find_task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tinytask import WORKSPACE_GRADER, tiny_task


def one_round(task: str, seeds: list[int], art: Path | None) -> tuple[float, list[float]]:
    t = find_task(task)
    t0 = time.monotonic()
    outs = asyncio.run(
        rollout_many(task, lambda: reference_agent(t, "robust"), seeds, 1, artifacts_dir=art)
    )
    wall = time.monotonic() - t0
    assert all(o.reward == 1.0 for o in outs), [o.error for o in outs]
    return wall, [o.wall_s for o in outs]


def store_writes(task: str, run_dir: Path, line: str, n: int) -> float:
    """Seconds per episode of the store's own work: open once, then per episode a row
    marked running and finished with ``line`` as its trajectory (two commits)."""
    t = find_task(task)
    seeds = list(range(n))
    t0 = time.perf_counter()
    with RunStore.open(run_dir, run_config(t, reference_agent(t, "robust"), {}), seeds) as s:
        for seed in seeds:
            s.mark_running(seed)
            s.finish(
                seed,
                reward=1.0,
                functional=1.0,
                breakdown={"answer": 1.0},
                end_reason="submit",
                error=None,
                wall_s=0.5,
                info={"steps": 2},
                grade=None,
                trajectory=line,
            )
    return (time.perf_counter() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=12, help="episodes per round and way")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--writes", type=int, default=500, help="episodes of store work alone")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        root = Path(tmp)
        task = str(tiny_task(root, dev_hosts=0, grader=WORKSPACE_GRADER))
        seeds = list(range(1, args.episodes + 1))
        one_round(task, seeds[:2], None)  # warm caches
        walls: dict[str, list[float]] = {"with": [], "without": []}
        episode_s: list[float] = []
        for r in range(args.rounds):
            order = ("with", "without") if r % 2 == 0 else ("without", "with")
            for way in order:
                art = root / f"run{r}" if way == "with" else None
                wall, per = one_round(task, seeds, art)
                walls[way].append(wall)
                episode_s += per
        line = (root / "run0" / "trajectories.jsonl").read_text().splitlines()[0]
        per_write = store_writes(task, root / "writes", line, args.writes)
    eph = {w: 3600 * args.episodes / statistics.median(v) for w, v in walls.items()}
    mean_episode = statistics.fmean(episode_s)
    print(f"tiny task, {args.episodes} episodes x {args.rounds} rounds each way, one at a time")
    for w in ("without", "with"):
        print(
            f"  {w:7} store: {eph[w]:8.0f} episodes/hour "
            f"(round walls {', '.join(f'{x:.2f}' for x in walls[w])} s)"
        )
    print(f"  with/without episodes per hour: {eph['with'] / eph['without']:.3f}")
    print(
        f"  store work alone: {per_write * 1000:.2f} ms per episode "
        f"(trajectory line {len(line)} bytes, {args.writes} episodes)"
    )
    print(
        f"  mean episode {mean_episode * 1000:.0f} ms: store work / episode = "
        f"{per_write / mean_episode:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
