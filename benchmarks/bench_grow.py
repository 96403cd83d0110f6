"""What growing a running cluster costs: ``Cluster.add_hosts(k)`` against building a
cluster of ``k`` hosts from nothing, in the same run.

Run (as root): ``.venv/bin/python benchmarks/bench_grow.py [--hosts 2] [--repeat 5]``

Each round builds a 3-host cluster, then times adding ``--hosts`` hosts to it (their
network, cgroups, disks and every host's ``/etc/hosts``), and separately times starting a
fresh cluster of ``--hosts`` hosts (its run record, subnet, bridge and the same per-host
work). The ratio of the medians says what a growth costs next to the floor of building
that many hosts at all (teardown is left out of both). Noisy on a shared machine: the
ratio is what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time

from infragym.sandbox import Cluster


def main(hosts: int, repeat: int) -> None:
    grow, fresh = [], []
    for _ in range(repeat):
        with Cluster(3) as c:
            names = [f"n{4 + i}" for i in range(hosts)]
            t0 = time.perf_counter()
            c.add_hosts(names)
            grow.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c2 = Cluster(hosts).start()
        fresh.append(time.perf_counter() - t0)
        c2.close()
    g, f = statistics.median(grow), statistics.median(fresh)
    print(f"add {hosts} hosts to a running 3-host cluster: median {g * 1000:.1f} ms")
    print(f"start a fresh {hosts}-host cluster:              median {f * 1000:.1f} ms")
    print(f"ratio grow / fresh: {g / f:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    main(args.hosts, args.repeat)
