"""Teardown of a cluster whose dead load balancer left a connection at a moved VIP, with
the orphaned sockets aborted before the namespaces go (now) and without (before), in one run.

    .venv/bin/python benchmarks/bench_teardown.py [--repeats 3]

The scenario is ha-web's after a fault sweep, reduced to one connection: two ``net_admin``
hosts, n1 holds a virtual IP and a server on it, the client connects, the VIP moves to n2
(the client's neighbour entry follows, as a gratuitous ARP makes it), n1 crashes. n1's
kernel closes the connection for the dead server; the acknowledgement of its FIN goes to
n2, so the orphan retransmits and holds n1's namespace and veth. Before, teardown waited
out its 10 s for that veth. A plain 3-host cluster's teardown, with and without the
sockets' abort, shows what the abort costs when there is nothing to abort.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from orphans import orphan_at_moved_vip

from infragym.sandbox import Cluster, _network


def orphaned() -> Cluster:
    """A started cluster whose n1 left an orphaned connection at a VIP now on n2."""
    c = Cluster(2, net_admin=True).start()
    orphan_at_moved_vip(c)
    return c


def timed_close(make: Callable[[], Cluster], abort: bool) -> float:
    c = make()
    saved = _network.abort_sockets
    if not abort:
        _network.abort_sockets = lambda namespaces: None  # the code before the fix
    try:
        t0 = time.perf_counter()
        c.close()
        return time.perf_counter() - t0
    finally:
        _network.abort_sockets = saved


def row(what: str, make: Callable[[], Cluster], repeats: int, unit: float) -> None:
    before: list[float] = []
    after: list[float] = []
    for r in range(repeats):  # interleaved, in turn first, so noise hits both alike
        for abort in (r % 2 == 1, r % 2 == 0):
            (after if abort else before).append(timed_close(make, abort))
    b, a = statistics.median(before), statistics.median(after)
    name = "s" if unit == 1 else "ms"
    print(f"{what:<34} {b * unit:>10.2f} {a * unit:>10.2f} {name:>4} {b / a:>8.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    print(f"{'teardown (median)':<34} {'before':>10} {'after':>10} {'':>4} {'ratio':>9}")
    row("orphan at a moved VIP (2 hosts)", orphaned, args.repeats, 1.0)
    row("plain 3-host cluster", lambda: Cluster(3).start(), 10 * args.repeats, 1000.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
