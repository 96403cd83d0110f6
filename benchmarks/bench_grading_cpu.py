"""Where one grading's CPU goes, and the episodes per hour that leaves room for.

    .venv/bin/python benchmarks/bench_grading_cpu.py [--task kv-replicated] [--tier robust]
        [--seeds 1-4] [--share 0.6]

Grades the reference ``--tier`` on each seed, one at a time, end to end through
``grade_workspace``, and splits the CPU seconds each grading cost the machine:

- ``sut``: the graded hosts' processes (the system under test), from their cgroups'
  ``cpuacct.usage``, sampled every 50 ms while they exist (the runs this process owns);
- ``harness``: this process (the workload's clients, the checkers, the history, the
  platform's own polling), user and system time from ``getrusage``;
- ``tools``: the commands it ran and reaped (``ip``, ``nft``, ``bwrap``... and a host's
  processes it reaped itself, which its cgroup counted too: an upper bound).

Printed per grading: the variant's hosts, its operations, wall time, each share (the
hosts' with its kernel part, ``s``: system time, much of it their TCP traffic; the
harness's with its user part, ``u``), and the CPU milliseconds per operation; then the
medians, and two ceilings on graded episodes per hour on this machine: by CPU
(``--share`` of every core, the rest kept for the health check's margin, divided by the
median CPU of a grading) and by wall time at the concurrency the task's declared cost
admits (``[grading] cores``). The smaller one bounds a trainer's throughput with the
grading alone (an episode adds the agent's turns).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from infragym.cli._seeds import parse_seeds
from infragym.grading import grade_workspace
from infragym.sandbox._cgroup import CGROUP_ROOT, PARENT
from infragym.sandbox._state import all_records
from infragym.tasks import find_task

CPUACCT = CGROUP_ROOT / "cpuacct" / PARENT
TICK = os.sysconf("SC_CLK_TCK")


class HostCpu:
    """The most CPU seen per host of the runs this process owns (cgroups vanish at the
    end of a run, so they are sampled while they exist), and this sampler's own CPU (its
    reads of the run records and cgroups are the benchmark's, not the harness's)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.system: dict[tuple[str, str], float] = {}  # of it in the kernel (cpuacct.stat)
        self._own = (0.0, 0.0)  # the sampler thread's user and system seconds so far
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> HostCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _own_runs(self) -> set[str]:
        return {r.run_id for r in all_records() if r.owner_pid == os.getpid()}

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()
            ru = resource.getrusage(resource.RUSAGE_THREAD)
            with self._lock:
                self._own = (ru.ru_utime, ru.ru_stime)

    def _sample(self) -> None:
        for run in self._own_runs():
            for d in (CPUACCT / run).glob("*"):
                key = (run, d.name)
                try:
                    s = int((d / "cpuacct.usage").read_text()) / 1e9
                except (OSError, ValueError):
                    continue
                try:
                    text = (d / "cpuacct.stat").read_text()
                    sys_s = int(dict(ln.split() for ln in text.splitlines())["system"]) / TICK
                except (OSError, ValueError, KeyError):
                    sys_s = self.system.get(key, 0.0)
                with self._lock:
                    self.seen[key] = max(s, self.seen.get(key, 0.0))
                    self.system[key] = max(sys_s, self.system.get(key, 0.0))

    def own(self) -> tuple[float, float]:
        """The sampler thread's user and system CPU seconds so far."""
        with self._lock:
            return self._own

    def take(self) -> tuple[float, float]:
        """The CPU seconds of the hosts seen since the last take, and the kernel's part."""
        with self._lock:
            total, system = sum(self.seen.values()), sum(self.system.values())
            self.seen.clear()
            self.system.clear()
        return total, min(system, total)


def grading_ops(art: Path) -> int:
    hist = art / "history.jsonl"
    if not hist.is_file():
        return 0
    return sum('"type": "invoke"' in line for line in hist.read_text().splitlines())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="kv-replicated")
    ap.add_argument("--tier", default="robust")
    ap.add_argument("--seeds", default="1-4", help="seeds: N, A-B or A,B,C (default 1-4)")
    ap.add_argument(
        "--share", type=float, default=0.6, help="of the cores gradings may use (default 0.6)"
    )
    args = ap.parse_args()
    task = find_task(args.task)
    cores = os.cpu_count() or 1
    rows = []
    print(f"{args.task} {args.tier} on {cores} cores; CPU seconds per grading")
    print(f"{'seed':>4} {'hosts':>5} {'ops':>5} {'wall':>6} {'sut':>13} {'harness':>13} "
          f"{'tools':>6} {'total':>6} {'ms/op':>6} reward")  # fmt: skip
    with HostCpu() as hosts:
        for seed in parse_seeds(args.seeds):
            r0, own0 = resource.getrusage(resource.RUSAGE_SELF), hosts.own()
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            with tempfile.TemporaryDirectory() as tmp:
                art = Path(tmp)
                res = asyncio.run(grade_workspace(task, task.solution(args.tier), seed, art))
                ops = grading_ops(art)
            wall = time.monotonic() - t0
            time.sleep(0.2)  # the sampler's last look
            r1, own1 = resource.getrusage(resource.RUSAGE_SELF), hosts.own()
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
            tools = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
            user -= own1[0] - own0[0]  # the sampler's, not the harness's
            system -= own1[1] - own0[1]
            sut, sut_sys = hosts.take()
            total = sut + user + system + tools
            n = len(task.spec.variant(seed).host_names)
            reward = "err" if res.error else f"{res.reward or 0.0:.3f}"
            rows.append((wall, sut, user + system, tools, total))
            print(f"{seed:>4} {n:>5} {ops:>5} {wall:>5.1f}s {sut:>5.2f} ({sut_sys:.2f}s) "
                  f"{user + system:>5.2f} ({user:.2f}u) {tools:>6.2f} {total:>6.2f} "
                  f"{1000 * total / max(ops, 1):>6.2f} {reward}")  # fmt: skip
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    wall, sut, harness, tools, total = med
    print(f"median: wall {wall:.1f} s, CPU {total:.2f} s = sut {sut / total:.0%}, "
          f"harness {harness / total:.0%}, tools {tools / total:.0%}")  # fmt: skip
    by_cpu = args.share * cores * 3600 / total
    declared = task.spec.grading_cores
    slots = max(1, int(cores / declared)) if declared else cores
    by_wall = slots * 3600 / wall
    print(f"ceiling by CPU ({args.share:.0%} of {cores} cores): {by_cpu:.0f} gradings/hour; "
          f"by wall at {slots} at once (declared {declared} cores each): "
          f"{by_wall:.0f}/hour")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
