"""What a live episode's background workload costs: the platform's CPU while it runs, and
the service's latency with and without it.

Run (as root): ``.venv/bin/python benchmarks/bench_live.py [--task oncall-shift]
[--seconds 10] [--rate R] [--rounds 3]``

Plays ``--task`` (default ``tests/tasks/live-config``, a greeter on two hosts; or a
built-in live task such as ``oncall-shift``, whose kv service replicates every write to
all its nodes): reset (timed), then for ``--seconds`` the agent idles while the workload
sends its requests (``--rate`` per second; default the task's own); the platform
process's CPU over that window (``time.process_time``) is the workload's cost. Then a
read (``GET /health``, or ``GET /kv/k1`` on a ``workload = "kv"`` task) is timed from the
clients' network on the first host, 200 times one after the other, with the workload
running and again once it is stopped: the ratio of the medians is the load's cost on the
service. ``--rounds`` repeats the whole measure on fresh episodes; the medians and the
ratios of every round are printed. Also timed: one ``metrics`` step
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
from infragym.tasks import Task, find_task, load_task

TASK = Path(__file__).resolve().parent.parent / "tests" / "tasks" / "live-config"


async def probe_latency(env: object, n: int, path: str) -> float:
    """The median seconds of ``n`` sequential GETs of ``path`` on the first host, from the
    clients' side."""
    live = env.live  # type: ignore[attr-defined]
    cluster = live.cluster
    url = live.urls[min(live.urls)]

    async def run() -> list[float]:
        import aiohttp

        out = []
        async with aiohttp.ClientSession() as s:
            for _ in range(n):
                t0 = time.perf_counter()
                async with s.get(url + path) as r:
                    await r.read()
                out.append(time.perf_counter() - t0)
        return out

    return statistics.median(await asyncio.to_thread(cluster.run_client, run))


async def measure(task: Task, seconds: float, path: str) -> dict[str, float]:
    """One episode: reset, idle under the workload, then the read timed with and without."""
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
        with_load = await probe_latency(env, 200, path)
        await env.live.stop_load()  # type: ignore[union-attr]
        without = await probe_latency(env, 200, path)
    finally:
        await env.close()
    return {"reset_s": reset_s, "cpu": cpu, "metrics_s": metrics_s, "ops": ops,
            "with_ms": with_load * 1000, "without_ms": without * 1000}  # fmt: skip


async def main(name: str, seconds: float, rate: float | None, rounds: int) -> None:
    task = load_task(TASK) if name == "live-config" else find_task(name)
    op = task.spec.operate
    if op is None:
        raise SystemExit(f'{name} is not a live task (mode = "operate")')
    if rate is not None:
        op = dataclasses.replace(op, rate=rate)
        task = dataclasses.replace(task, spec=dataclasses.replace(task.spec, operate=op))
    path = "/kv/k1" if op.workload == "kv" else "/health"
    runs = []
    for i in range(rounds):
        r = await measure(task, seconds, path)
        runs.append(r)
        print(
            f"round {i + 1}: reset {r['reset_s']:.2f} s; {r['ops']:.0f} requests at "
            f"{op.rate:g}/s, platform CPU {r['cpu']:.1%} of a core; metrics step "
            f"{r['metrics_s'] * 1000:.1f} ms; GET {path} median {r['with_ms']:.2f} ms with "
            f"the workload, {r['without_ms']:.2f} ms without: ratio "
            f"{r['with_ms'] / r['without_ms']:.2f}",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ratio = statistics.median(r["with_ms"] / r["without_ms"] for r in runs)
    print(
        f"{task.name}, median of {rounds}: reset {med['reset_s']:.2f} s, platform CPU "
        f"{med['cpu']:.1%}, GET {path} {med['with_ms']:.2f} ms with the workload vs "
        f"{med['without_ms']:.2f} ms without (median ratio {ratio:.2f})"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--task", default="live-config", help="live-config (the test task) or a built-in live task"
    )
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=None, help="requests/s (default: the task's)")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    asyncio.run(main(a.task, a.seconds, a.rate, a.rounds))
