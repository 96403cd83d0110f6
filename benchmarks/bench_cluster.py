"""Cluster up and down, against the floor of bare `ip` commands, measured in one run.

    .venv/bin/python benchmarks/bench_cluster.py [--repeats 15]

The floor builds the same network (namespaces, bridge, veths, addresses, links up) with
one `ip` process per command, the way a shell script would, and tears it down the same way.
infragym builds more than the floor (cgroups, per-host directories, a tmpfs data disk,
a hosts file, a client namespace), so a ratio near 1 means that extra costs nothing.
Targets: a 3-host cluster ready in <= 50 ms median and <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from infragym.sandbox import Cluster, cleanup


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def floor_once(n: int, tag: str) -> tuple[float, float]:
    ns = [f"igf{tag}{i}" for i in range(n)]
    br = f"igf{tag}br"
    t0 = time.perf_counter()
    for x in ns:
        ip("netns", "add", x)
    ip("link", "add", br, "type", "bridge")
    ip("link", "set", br, "up")
    for i, x in enumerate(ns):
        v = f"igf{tag}v{i}"
        ip("link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", x)
        ip("link", "set", v, "master", br, "up")
        ip("-n", x, "addr", "add", f"198.19.254.{i + 1}/24", "dev", "eth0")
        ip("-n", x, "link", "set", "eth0", "up")
        ip("-n", x, "link", "set", "lo", "up")
    t1 = time.perf_counter()
    for x in ns:
        ip("netns", "del", x)
    ip("link", "del", br)
    t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def infragym_once(n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    c = Cluster(n).start()
    t1 = time.perf_counter()
    c.close()
    t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    print(f"{'hosts':>5} {'what':<9} {'infragym ms':>12} {'floor ms':>9} {'ratio':>6}")
    for n in (3, 10):
        ours: list[tuple[float, float]] = []
        floor: list[tuple[float, float]] = []
        for r in range(args.repeats):  # interleaved so machine noise hits both alike
            ours.append(infragym_once(n))
            floor.append(floor_once(n, f"{r % 10}"))
        for what, idx in (("up", 0), ("down", 1), ("up+down", 2)):
            def med(xs: list[tuple[float, float]], idx: int = idx) -> float:
                vals = [x[0] + x[1] if idx == 2 else x[idx] for x in xs]
                return statistics.median(vals)

            a, b = med(ours), med(floor)
            print(f"{n:>5} {what:<9} {a:>12.1f} {b:>9.1f} {a / b:>6.2f}")
    up3 = statistics.median(x[0] for x in [infragym_once(3) for _ in range(args.repeats)])
    print(f"\ntarget: 3-host cluster ready <= 50 ms median: {up3:.1f} ms "
          f"({'met' if up3 <= 50 else 'MISSED'})")
    left = cleanup()
    if left.removed_anything:
        print(f"warning: benchmark left something behind: {left.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
