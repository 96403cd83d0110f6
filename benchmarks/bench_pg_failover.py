"""pg-failover: PostgreSQL's start on a host against a bare `pg_ctl start`, and the time of
one grading against a kv-replicated grading in the same run.

    .venv/bin/python benchmarks/bench_pg_failover.py [--repeats 7] [--seed 1] [--no-grading]

1. One host (its bubblewrap view, dropped privileges, cgroup, sized data disk) with a
   data directory made by initdb: PostgreSQL 15 started there as the host's service until
   it accepts a connection, then crashed (SIGKILL of the host's processes, as the nemesis
   does), against `pg_ctl start -w` / `pg_ctl stop -m immediate` of the same data
   directory run bare on the machine as the same user, interleaved.
2. One grading of pg-failover's robust reference (Patroni on etcd: deploy, functional
   tests with a restart of every host, the load under four faults, the final checks) and
   one of kv-replicated's robust reference, by wall time. Target: pg-failover <= 120 s on
   2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infragym.grading import grade_workspace
from infragym.sandbox import Cluster, Limits, cleanup
from infragym.tasks import find_task

PG = "/usr/lib/postgresql/15/bin"
PORT = 5432


def on_host(c: Cluster) -> float:
    h = c.host(c.names[0])
    t0 = time.perf_counter()
    h.spawn("pg", [f"{PG}/postgres", "-D", "/srv/data/pg", "-c", f"port={PORT}",
                   "-c", "listen_addresses=*", "-c", "unix_socket_directories=/tmp"])  # fmt: skip
    h.wait_port(PORT, 30.0)
    took = time.perf_counter() - t0
    h.kill_all()
    (h.data_dir / "pg" / "postmaster.pid").unlink(missing_ok=True)
    return took * 1000


def bare(c: Cluster, sock: str) -> float:
    h = c.host(c.names[0])
    who = ["setpriv", f"--reuid={h.identity.uid}", f"--regid={h.identity.gid}", "--clear-groups"]
    opts = f"-c port={PORT} -c listen_addresses='' -c unix_socket_directories={sock}"
    data = str(h.data_dir / "pg")
    t0 = time.perf_counter()
    subprocess.run([*who, f"{PG}/pg_ctl", "-D", data, "-w", "-o", opts, "-l",
                    f"{sock}/log", "start"], check=True, capture_output=True)  # fmt: skip
    took = time.perf_counter() - t0
    subprocess.run([*who, f"{PG}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                   check=True, capture_output=True)  # fmt: skip
    return took * 1000


def grading(task_name: str, seed: int) -> tuple[float, float | None]:
    task = find_task(task_name)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = asyncio.run(grade_workspace(task, task.solution("robust"), seed, Path(tmp)))
        took = time.perf_counter() - t0
    return took, None if result.error else round(result.reward, 3)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-grading", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    with Cluster(["db1"], limits=Limits(memory_bytes=1024 << 20), data_size=384 << 20) as c:
        h = c.host("db1")
        r = h.run([f"{PG}/initdb", "-D", "/srv/data/pg", "-U", "postgres"], timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        sock = tempfile.mkdtemp(prefix="pgbench-")
        os.chown(sock, h.identity.uid, h.identity.gid)
        ours, floor = [], []
        for _ in range(args.repeats):  # interleaved so machine noise hits both alike
            ours.append(on_host(c))
            floor.append(bare(c, sock))
    a, b = statistics.median(ours), statistics.median(floor)
    print(f"{'PostgreSQL start':<24} {'on a host ms':>12} {'bare ms':>8} {'ratio':>6}")
    print(f"{'(median of ' + str(args.repeats) + ')':<24} {a:>12.1f} {b:>8.1f} {a / b:>6.2f}")
    if not args.no_grading:
        pg, pg_reward = grading("pg-failover", args.seed)
        kv, kv_reward = grading("kv-replicated", args.seed)
        print(f"\ngrading of robust, seed {args.seed}: pg-failover {pg:.1f} s "
              f"(reward {pg_reward}), kv-replicated {kv:.1f} s (reward {kv_reward}), "
              f"ratio {pg / kv:.2f}")  # fmt: skip
        print(f"target pg-failover <= 120 s: {'met' if pg <= 120 else 'MISSED'}")
    left = cleanup()
    if left.removed_anything:
        print(f"warning: something was left behind: {left.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
