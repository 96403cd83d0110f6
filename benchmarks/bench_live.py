"""What a live episode's background workload costs: the platform's CPU while it runs, and
the service's latency with and without it.

Run (as root): ``.venv/bin/python benchmarks/bench_live.py [--seconds 10] [--rate 20]``

Plays ``tests/tasks/live-config`` (a greeter on two hosts): reset (timed), then for
``--seconds`` the agent idles while the workload sends ``--rate`` requests/s; the
platform process's CPU over that window (``time.process_time``) is the workload's cost.
Then ``GET /health`` is timed from the clients' network, 200 times one after the other,
with the workload running and again once it is stopped: the ratio of the medians is the
load's cost on the service (about 1 for a light rate). Also timed: one ``metrics`` step
over the recorded history. The numbers are noisy on a shared machine; the ratios are
what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from pathlib import Path

from infragym.env import Env, ToolCall
from infragym.tasks import load_task

TASK = Path(__file__).resolve().parent.parent / "tests" / "tasks" / "live-config"


async def probe_latency(env: object, n: int) -> float:
    """The median seconds of ``n`` sequential GET /health to n1 from the clients' side."""
    live = env.live  # type: ignore[attr-defined]
    cluster, url = live.cluster, live.urls["n1"]

    async def run() -> list[float]:
        import aiohttp

        out = []
        async with aiohttp.ClientSession() as s:
            for _ in range(n):
                t0 = time.perf_counter()
                async with s.get(url + "/health") as r:
                    await r.read()
                out.append(time.perf_counter() - t0)
        return out

    return statistics.median(await asyncio.to_thread(cluster.run_client, run))


async def main(seconds: float, rate: float) -> None:
    task = load_task(TASK)
    op = dataclasses.replace(task.spec.operate, rate=rate)  # type: ignore[arg-type]
    task = dataclasses.replace(task, spec=dataclasses.replace(task.spec, operate=op))

    env = Env(task)
    t0 = time.perf_counter()
    await env.reset(seed=1)
    reset_s = time.perf_counter() - t0
    try:
        cpu0, w0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - w0)
        t0 = time.perf_counter()
        await env.step(ToolCall("metrics", {"minutes": 5}))
        metrics_s = time.perf_counter() - t0
        ops = len(env.live.history.operations())  # type: ignore[union-attr]
        with_load = await probe_latency(env, 200)
        await env.live.stop_load()  # type: ignore[union-attr]
        without = await probe_latency(env, 200)
    finally:
        await env.close()
    print(f"reset (cluster, deploy, workload): {reset_s:.2f} s")
    print(f"workload at {rate:g}/s: {ops} requests recorded; platform CPU {cpu:.1%} of a core")
    print(f"metrics step over the history: {metrics_s * 1000:.1f} ms")
    print(
        f"GET /health median: {with_load * 1000:.2f} ms with the workload, "
        f"{without * 1000:.2f} ms without: ratio {with_load / without:.2f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20.0)
    a = ap.parse_args()
    asyncio.run(main(a.seconds, a.rate))
