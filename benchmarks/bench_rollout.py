"""Episodes per hour for training: one at a time, at each concurrency asked, and through
verifiers.

    .venv/bin/python benchmarks/bench_rollout.py [--task kv-replicated] [--episodes 8]
        [--concurrency 1,4,8,16] [--solution robust] [--verifiers]

Every episode is the same work: the scripted test model (``ScriptedModelServer``) plays
the task's reference ``--solution`` over real HTTP, the episode is graded for real (the
system under test's CPU is part of every grading: a leaner correct service leaves room
for more at once, which admission control measures). In one run:
``rollout_many`` one at a time (the floor), then at each concurrency, and (``--verifiers``)
verifiers rollouts (``infragym-verifiers``: its interception server in the model's path,
its trace recording and scoring) at the largest. Printed: wall time, episodes per hour, the
speed-up over one at a time, the median and largest wait for room to grade (admission
control), the share of the machine's cores kept busy meanwhile, and the rewards, which
must agree with one at a time within 0.05 (an overloaded grading is retried, and shown as
``err`` if it stayed overloaded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from infragym.agent import OpenAIAgent
from infragym.runner import rollout_many
from infragym.tasks import find_task
from infragym.testing import ScriptedModelServer, by_turn, reference_script

KEY_VAR = "INFRAGYM_BENCH_MODEL_KEY"


def busy_s() -> tuple[float, float]:
    """(busy, total) CPU ticks of the machine since boot, from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


BUSY: dict[str, float] = {}  # the machine's busy share during each measurement, by label


async def with_rollout_many(
    task: str, seeds: list[int], concurrency: int, art: Path, solution: str = "robust"
) -> tuple[float, list[float | None], list[float]]:
    """Wall time, rewards in seed order and each grading's wait for room."""
    script = reference_script(find_task(task), solution)
    async with ScriptedModelServer(then=by_turn(script)) as server:

        def agent() -> OpenAIAgent:
            return OpenAIAgent(model="test-model", base_url=server.url, api_key=server.api_key)

        t0, b0 = time.monotonic(), busy_s()
        outs = await rollout_many(task, agent, seeds, concurrency, artifacts_dir=art)
        b1 = busy_s()
        BUSY[f"c{concurrency}"] = (b1[0] - b0[0]) / max(1, b1[1] - b0[1])
        waits = [o.grade.timings.get("admission_wait_s", 0.0) for o in outs if o.grade]
        return time.monotonic() - t0, [o.reward for o in outs], waits


async def with_verifiers(
    task: str, seeds: list[int], concurrency: int, art: Path
) -> tuple[float, list[float | None]]:
    from infragym.integrations.verifiers import make_env

    script = reference_script(find_task(task), "robust")
    env = make_env(tasks=[task], seeds=seeds, artifacts_dir=str(art))
    import verifiers.v1 as vf

    async with ScriptedModelServer(then=by_turn(script)) as server:
        os.environ[KEY_VAR] = server.api_key or ""
        ctx = vf.ModelContext(
            model="test-model",
            client=vf.EvalClientConfig(base_url=server.url, api_key_var=KEY_VAR),
        )
        gate = asyncio.Semaphore(concurrency)
        t0 = time.monotonic()
        async with env.serving():
            slots = [slot for t in env.taskset for slot in env.slots(t, 1)]
            episodes = await asyncio.gather(*(env.run_slot(s, ctx, gate) for s in slots))
        wall = time.monotonic() - t0
    return wall, [e.traces[0].reward if e.ok else None for e in episodes]


def row(
    label: str,
    wall: float,
    n: int,
    floor: float,
    rewards: list[float | None],
    waits: list[float] | None = None,
    busy: float | None = None,
) -> None:
    shown = " ".join("err" if r is None else f"{r:.2f}" for r in rewards)
    wait = f"{statistics.median(waits):>6.1f} {max(waits):>6.1f}" if waits else f"{'-':>6} {'-':>6}"
    cpu = f"{busy:>5.0%}" if busy is not None else f"{'-':>5}"
    print(
        f"{label:<30} {wall:>7.1f} {n * 3600 / wall:>8.0f} {floor / wall:>7.2f}x {wait} {cpu}"
        f"   {shown}"
    )


def agree(solo: list[float | None], other: list[float | None]) -> bool:
    return all(
        a is not None and b is not None and abs(a - b) <= 0.05
        for a, b in zip(solo, other, strict=True)
    )


async def main_async(
    task: str, episodes: int, levels: list[int], verifiers: bool, solution: str
) -> None:
    seeds = list(range(1, episodes + 1))
    with tempfile.TemporaryDirectory(prefix="infragym-bench-") as tmp:
        art = Path(tmp)
        print(f"{episodes} episodes of {task}, scripted model playing the {solution} reference\n")
        print(
            f"{'':<30} {'wall s':>7} {'ep/hour':>8} {'speed-up':>8} {'wait':>6} {'max':>6}"
            f" {'busy':>5}   rewards (seed order)"
        )
        floor, r1, w1 = await with_rollout_many(task, seeds, 1, art / "c1", solution)
        row("rollout_many, one at a time", floor, episodes, floor, r1, w1, BUSY["c1"])
        verdicts = []
        for c in (c for c in levels if c != 1):
            wall, rc, wc = await with_rollout_many(task, seeds, c, art / f"c{c}", solution)
            row(f"rollout_many, concurrency {c}", wall, episodes, floor, rc, wc, BUSY[f"c{c}"])
            verdicts.append((f"concurrency {c}", agree(r1, rc)))
        if verifiers:
            top = max(levels)
            wall, rv = await with_verifiers(task, seeds, top, art / "vf")
            row(f"verifiers, concurrency {top}", wall, episodes, floor, rv)
            verdicts.append((f"verifiers {top}", agree(r1, rv)))
        print()
        for what, ok in verdicts:
            print(
                f"per-seed rewards at {what} agree with one at a time within 0.05: "
                f"{'yes' if ok else 'NO'}"
            )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="kv-replicated")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument(
        "--concurrency", default="1,4,8,16", help="the concurrencies to measure, e.g. 1,4,8,16"
    )
    ap.add_argument("--verifiers", action="store_true", help="also through verifiers")
    ap.add_argument("--solution", default="robust", help="the reference the model plays")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    levels = sorted({int(c) for c in args.concurrency.split(",")})
    asyncio.run(main_async(args.task, args.episodes, levels, args.verifiers, args.solution))
    return 0


if __name__ == "__main__":
    sys.exit(main())
