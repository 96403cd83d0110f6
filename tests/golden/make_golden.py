"""Regenerates the golden histories in this folder (run: python tests/golden/make_golden.py).

The ``.jsonl`` files are the fixtures; this script only records how they were made. Each
file's header ``meta`` holds a description and the verdict every golden checker must
give (see ``test_checkers_golden.py`` for the checker configuration). Change a file only
with a reason: a changed verdict on a golden history is a behaviour change.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from test_checkers_support import HistoryBuilder, requests  # noqa: E402

from infragym.history import History  # noqa: E402

Expect = dict[str, str]
GOLDEN: dict[str, Callable[[], tuple[str, Expect, History]]] = {}


def golden(fn: Callable[[HistoryBuilder], tuple[str, Expect]]) -> Callable[[HistoryBuilder], Any]:
    def make() -> tuple[str, Expect, History]:
        b = HistoryBuilder()
        desc, expect = fn(b)
        return desc, expect, b.build({"description": desc, "expect": expect})

    GOLDEN[fn.__name__.replace("_", "-")] = make
    return fn


ALL_PASS = {
    "availability": "pass",
    "latency": "pass",
    "lost-writes": "pass",
    "stale-reads": "pass",
    "linearizable": "pass",
}


def _sequential(b: HistoryBuilder, key: str, start: float, n: int, node: str = "n1") -> float:
    """Alternating write/read of fresh values on ``key``, 0.1 s apart; returns end time."""
    t = start
    for i in range(n):
        v = f"{key}{i}"
        b.write(key, v, t, t + 0.01, node=node, intended=t)
        b.read(key, v, t + 0.05, t + 0.06, node=node, intended=t + 0.05)
        t += 0.1
    return t


@golden
def register_sequential(b: HistoryBuilder) -> tuple[str, Expect]:
    for k in ("a", "b", "c"):
        _sequential(b, k, {"a": 0.0, "b": 0.02, "c": 0.04}[k], 5)
    return "three keys written and read back one after another, no faults", ALL_PASS


@golden
def register_concurrent_writes(b: HistoryBuilder) -> tuple[str, Expect]:
    t = _sequential(b, "x", 0.0, 3)
    # x: two overlapping writes; the earlier-invoked one wins (legal: the other went first)
    b.write("x", "p", t, t + 0.3, node="n1", intended=t)
    b.write("x", "q", t + 0.1, t + 0.2, node="n2", intended=t + 0.1)
    b.read("x", "p", t + 0.4, t + 0.41, node="n1", intended=t + 0.4)
    b.read("x", "p", t + 0.5, t + 0.51, node="n2", intended=t + 0.5)
    # y: two overlapping writes; the later-invoked one wins
    b.write("y", "p", t, t + 0.3, node="n1", intended=t)
    b.write("y", "q", t + 0.1, t + 0.2, node="n2", intended=t + 0.1)
    b.read("y", "q", t + 0.4, t + 0.41, node="n3", intended=t + 0.4)
    # z: a read concurrent with a write may see either value
    b.write("z", "old", t, t + 0.01, intended=t)
    b.write("z", "new", t + 0.1, t + 0.3, intended=t + 0.1)
    b.read("z", "old", t + 0.15, t + 0.16, intended=t + 0.15)
    b.read("z", "new", t + 0.17, t + 0.18, intended=t + 0.17)
    b.read("z", "new", t + 0.4, t + 0.41, intended=t + 0.4)
    return "overlapping writes resolved in either order; reads during a write", ALL_PASS


@golden
def register_info_writes(b: HistoryBuilder) -> tuple[str, Expect]:
    t = _sequential(b, "x", 0.0, 5)
    # x: a write timed out (info) but took effect: later reads see it
    b.write("x", "maybe", t, t + 1.0, outcome="info", intended=t)
    b.read("x", "maybe", t + 1.1, t + 1.11, intended=t + 1.1)
    # y: a write timed out and never took effect: reads keep the old value
    b.write("y", "y0", t, t + 0.01, intended=t)
    b.write("y", "lost-in-flight", t + 0.1, t + 1.1, outcome="info", intended=t + 0.1)
    b.read("y", "y0", t + 1.2, t + 1.21, intended=t + 1.2)
    # z: an info cas that took effect, and a failed write that did not
    b.write("z", 1, t, t + 0.01, intended=t)
    b.cas("z", 1, 2, t + 0.1, t + 1.1, outcome="info", intended=t + 0.1)
    b.write("z", 9, t + 1.2, t + 1.21, outcome="fail", intended=t + 1.2)
    b.read("z", 2, t + 1.3, t + 1.31, intended=t + 1.3)
    # 4 of 19 operations got no ok answer, and 3 never completed (infinitely slow)
    expect = dict(ALL_PASS, availability="fail", latency="fail")
    return "unknown-outcome writes that did and did not take effect; a failed write", expect


@golden
def partition_stale_read(b: HistoryBuilder) -> tuple[str, Expect]:
    t = _sequential(b, "x", 0.0, 5)
    b.write("x", "before", t, t + 0.01, node="n1", intended=t)
    b.fault("partition-n3", t + 0.5, t + 3.0, targets=("n3",))
    b.write("x", "after", t + 1.0, t + 1.02, node="n1", intended=t + 1.0)
    # after the heal n3 still serves the value overwritten during the partition
    b.read("x", "before", t + 3.5, t + 3.51, node="n3", intended=t + 3.5)
    b.read("x", "after", t + 3.6, t + 3.61, node="n1", intended=t + 3.6)
    expect = dict(ALL_PASS, **{"stale-reads": "fail", "linearizable": "fail"})
    expect["availability"] = "unknown"  # the partition window holds only one operation
    return "a replica cut off by a partition serves a stale value after the heal", expect


@golden
def crash_lost_write(b: HistoryBuilder) -> tuple[str, Expect]:
    t = _sequential(b, "x", 0.0, 5)
    b.write("x", "acked", t, t + 0.01, node="n1", intended=t)  # acked from memory only
    b.fault("crash-n1", t + 0.2, t + 2.0, fault="crash", targets=("n1",))
    for i in range(10):
        ti = t + 0.3 + i * 0.15
        b.read("x", None, ti, ti + 1.0, outcome="info", intended=ti)
    b.read("x", "x4", t + 2.5, t + 2.51, node="n1", intended=t + 2.5)
    b.read("x", "x4", t + 2.6, t + 2.61, node="n2", intended=t + 2.6)
    expect = {
        "availability": "fail",
        "latency": "fail",
        "lost-writes": "fail",
        "stale-reads": "fail",
        "linearizable": "fail",
    }
    return "a write acknowledged before it was durable is gone after the crash", expect


@golden
def blackhole_server(b: HistoryBuilder) -> tuple[str, Expect]:
    t = 0.0
    for i in range(10):
        b.write("k", i, t, t + 0.002, intended=t)
        b.read("k", None, t + 0.05, t + 0.052, intended=t + 0.05)
        t += 0.1
    b.read("k", None, t + 0.5, t + 0.502, intended=t + 0.5)
    expect = dict(ALL_PASS, **{"lost-writes": "fail", "stale-reads": "fail"})
    expect["linearizable"] = "fail"
    return "a server that answers ok to every write and stores nothing", expect


@golden
def availability_outage(b: HistoryBuilder) -> tuple[str, Expect]:
    requests(b, 0.0, 2.0, 20)
    b.fault("partition-majority", 2.0, 4.0, targets=("n1", "n2"))
    requests(b, 2.0, 3.0, 20, outcome="fail")
    requests(b, 3.0, 4.0, 20, outcome="info", latency=1.0)
    requests(b, 4.0, 6.0, 20)
    expect = {
        "availability": "fail",
        "latency": "fail",
        "lost-writes": "unknown",
        "stale-reads": "unknown",
        "linearizable": "unknown",
    }
    return "a fault window in which every request failed or timed out", expect


@golden
def latency_stall(b: HistoryBuilder) -> tuple[str, Expect]:
    # a client meant to start requests every 50 ms but stalled for 2 s at t=1; the server
    # answers each in 2 ms once asked, so only the intended start reveals the stall
    for i in range(100):
        intended = i * 0.05
        invoke = intended if not 1.0 <= intended < 3.0 else 3.0 + (intended - 1.0) / 100
        b.op("request", None, t=invoke, done=invoke + 0.002, intended=intended)
    expect = {
        "availability": "pass",
        "latency": "fail",
        "lost-writes": "unknown",
        "stale-reads": "unknown",
        "linearizable": "unknown",
    }
    return "a stalled client: invocations far behind the open-loop schedule", expect


@golden
def empty(b: HistoryBuilder) -> tuple[str, Expect]:
    return "no operations at all", {k: "unknown" for k in ALL_PASS}


def main() -> None:
    for name, make in GOLDEN.items():
        _, _, hist = make()
        hist.write_jsonl(HERE / f"{name}.jsonl")
        print(f"wrote {name}.jsonl")


if __name__ == "__main__":
    main()
