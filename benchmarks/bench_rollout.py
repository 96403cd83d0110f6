"""Episodes per hour for training: one at a time, at concurrency C, and through verifiers.

    .venv/bin/python benchmarks/bench_rollout.py [--task kv-replicated] [--episodes 4]
                                                 [--concurrency 4]

Every episode is the same work: the scripted test model (``ScriptedModelServer``) plays
the task's robust reference over real HTTP, the episode is graded for real. Three ways,
in one run: ``rollout_many`` one at a time (the floor), ``rollout_many`` at concurrency C,
and verifiers rollouts (``infragym-verifiers``: its interception server in the model's
path, its trace recording and scoring) at the same concurrency. Printed: wall time,
episodes per hour, the speed-up over one at a time, and the rewards, which must agree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from infragym.agent import OpenAIAgent
from infragym.runner import rollout_many
from infragym.tasks import find_task
from infragym.testing import ScriptedModelServer, by_turn, reference_script

KEY_VAR = "INFRAGYM_BENCH_MODEL_KEY"


async def with_rollout_many(
    task: str, seeds: list[int], concurrency: int, art: Path
) -> tuple[float, list[float | None]]:
    script = reference_script(find_task(task), "robust")
    async with ScriptedModelServer(then=by_turn(script)) as server:

        def agent() -> OpenAIAgent:
            return OpenAIAgent(model="test-model", base_url=server.url, api_key=server.api_key)

        t0 = time.monotonic()
        outs = await rollout_many(task, agent, seeds, concurrency, artifacts_dir=art)
        return time.monotonic() - t0, [o.reward for o in outs]


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


def row(label: str, wall: float, n: int, floor: float, rewards: list[float | None]) -> None:
    shown = " ".join("err" if r is None else f"{r:.2f}" for r in rewards)
    print(f"{label:<30} {wall:>7.1f} {n * 3600 / wall:>8.0f} {floor / wall:>7.2f}x   {shown}")


async def main_async(task: str, episodes: int, concurrency: int) -> None:
    seeds = list(range(1, episodes + 1))
    with tempfile.TemporaryDirectory(prefix="infragym-bench-") as tmp:
        art = Path(tmp)
        print(f"{episodes} episodes of {task}, scripted model playing the robust reference\n")
        print(f"{'':<30} {'wall s':>7} {'ep/hour':>8} {'speed-up':>8}   rewards (seed order)")
        floor, r1 = await with_rollout_many(task, seeds, 1, art / "seq")
        row("rollout_many, one at a time", floor, episodes, floor, r1)
        wall, rc = await with_rollout_many(task, seeds, concurrency, art / "conc")
        row(f"rollout_many, concurrency {concurrency}", wall, episodes, floor, rc)
        wall, rv = await with_verifiers(task, seeds, concurrency, art / "vf")
        row(f"verifiers, concurrency {concurrency}", wall, episodes, floor, rv)
        agree = all(
            a is not None and b is not None and c is not None and max(a, b, c) - min(a, b, c)
            <= 0.05 for a, b, c in zip(r1, rc, rv, strict=True)
        )
        print(f"\nper-seed rewards agree within 0.05: {'yes' if agree else 'NO'}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="kv-replicated")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    asyncio.run(main_async(args.task, args.episodes, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
