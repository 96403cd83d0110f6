"""The main demo: 3 hosts, a key-value service, open-loop load, a seeded nemesis.

It shows the platform's point in one run: a service that answers every request in calm
conditions, durable and consistent, still has a single point of failure per key, and the
checkers measure exactly where and how much it breaks under crashes, pauses and partitions.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..checkers import (
    Availability,
    Checker,
    Latency,
    Linearizable,
    LostWrites,
    StaleReads,
    check_all,
)
from ..grading import StartAt, load_under_faults
from ..history import Clock, FaultAction, History
from ..nemesis import Nemesis, random_schedule
from ..report import verdict_table
from ..sandbox import HOST_PYTHON, Cluster
from ..workload import KVGenerator, Mix, Runner, Stream, final_read_stream
from ._task_demo import run_task_demo

__all__ = ["run_demo", "run_task_demo"]

PORT = 8080
SERVER = Path(__file__).with_name("kv_server.py")


def run_demo(
    seed: int = 1,
    duration: float = 16.0,
    out_dir: Path = Path("runs/demo"),
    console: Console | None = None,
    rate: float = 100.0,
) -> int:
    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    with Cluster(3, artifacts_dir=out_dir) as cluster:
        peers = ",".join(h.address for h in cluster.hosts)
        for h in cluster.hosts:
            # the script is copied into the host's own /srv/etc: the host runs as an
            # unprivileged user that may not read this package's directory
            shutil.copy(SERVER, h.etc_dir / SERVER.name)
            h.spawn("kv", [HOST_PYTHON, f"/srv/etc/{SERVER.name}", str(PORT), peers, h.address])
        for h in cluster.hosts:
            h.wait_port(PORT)
        console.print(
            f"[bold]cluster[/] {cluster.run_id}: "
            + ", ".join(f"{h.name}={h.address}" for h in cluster.hosts)
            + f"; kv service on port {PORT}"
        )
        schedule = random_schedule(
            seed,
            cluster.names,
            kinds=("crash", "pause", "partition"),
            duration=duration - 1.0,
            start=2.0,
        )
        console.print(
            f"[bold]nemesis[/] seed {seed}: "
            + "; ".join(
                f"{f.at:.1f}s {f.spec.kind}({','.join(f.spec.targets)}) for {f.duration:.1f}s"
                for f in schedule.faults
            )
        )
        targets = [f"http://{h.address}:{PORT}" for h in cluster.hosts]
        clock, history = Clock(), History(meta={"demo": "kv", "seed": seed})

        async def load(start_at: StartAt) -> None:
            async with Runner(history, clock) as runner:
                gen = KVGenerator(targets, seed=seed, mix=Mix(read=0.5, write=0.5), keys=12)
                stream = Stream(gen, rate=rate, duration=duration, timeout=1.0)
                await runner.run(stream, at=await start_at())

        async def final_reads() -> None:
            async with Runner(history, clock) as runner:
                await runner.run(final_read_stream(history, targets, timeout=2.0))

        async def main() -> None:
            async with Nemesis(cluster, history, clock) as nemesis:
                with console.status(
                    f"driving {rate:.0f} ops/s for {duration:.0f} s under faults..."
                ):
                    await load_under_faults(cluster, nemesis, schedule, clock, load)
            for h in cluster.hosts:
                h.wait_port(PORT)
            cluster.run_client(final_reads)

        asyncio.run(main())
        path = history.write_jsonl(out_dir / "history.jsonl")

    _print_timeline(console, history)
    checkers: list[Checker] = [
        Availability(slo=0.99),
        Latency(p99=0.5),
        LostWrites(),
        StaleReads(),
        Linearizable(time_budget_s=20.0),
    ]
    results = check_all(checkers, history)
    _print_windows(console, results["availability"].metrics)

    console.print(verdict_table(results, title="verdicts"))
    console.print(
        f"history: {path} (re-check with `infragym check {path}`); host logs: {out_dir / 'hosts'}"
    )
    return 0


def _print_timeline(console: Console, history: History) -> None:
    t = Table(title="fault timeline")
    for col in ("time (s)", "fault", "action", "targets", "label"):
        t.add_column(col)
    for e in history.faults:
        style = "red" if e.action is FaultAction.APPLY else "green"
        t.add_row(
            f"{e.time:7.3f}",
            e.fault,
            f"[{style}]{e.action.value}[/]",
            ", ".join(e.targets),
            e.label,
        )
    console.print(t)


def _print_windows(console: Console, metrics: object) -> None:
    if not isinstance(metrics, dict):
        return
    rows: dict[str, dict[str, object]] = {}
    for k, v in metrics.items():
        if k.startswith("window.") and k.count(".") >= 2:
            label, field = k[len("window.") :].rsplit(".", 1)
            rows.setdefault(label, {})[field] = v
    if not rows:
        return
    t = Table(title="availability per window")
    fields = sorted({f for r in rows.values() for f in r})
    t.add_column("window")
    for f in fields:
        t.add_column(f, justify="right")
    for label, r in rows.items():
        cells = []
        for f in fields:
            v = r.get(f, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else str(v))
        t.add_row(label, *cells)
    console.print(t)
