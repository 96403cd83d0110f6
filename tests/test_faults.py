"""Each fault takes effect and heals, shown by measurement on a real cluster."""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import time

import pytest
from conftest import needs_root, start_http

from infragym import CapabilityError, ConfigError
from infragym.history import Clock, FaultAction, History
from infragym.nemesis import (
    Bandwidth,
    ClockSkew,
    Crash,
    DiskFull,
    Latency,
    Nemesis,
    PacketLoss,
    Partition,
    Pause,
)
from infragym.sandbox import Cluster

pytestmark = needs_root


def _http_get(host_from, addr: str, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    s = host_from.socket()
    s.settimeout(timeout)
    try:
        s.connect((addr, 8080))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return s.recv(100).startswith(b"HTTP/1.0 200")
    except OSError:
        return False
    finally:
        s.close()


def test_partition_isolate_cuts_and_heals(cluster3: Cluster) -> None:
    n1, n2, n3 = cluster3.hosts
    for h in cluster3.hosts:
        start_http(h)
    f = Partition.isolate("n1", cluster3.names)
    f.apply(cluster3)
    assert not n1.can_connect(n2.address, 8080, timeout=0.3)
    assert not n3.can_connect(n1.address, 8080, timeout=0.3)
    assert n2.can_connect(n3.address, 8080)
    f.heal(cluster3)
    assert n1.can_connect(n2.address, 8080)
    assert n3.can_connect(n1.address, 8080)


def test_partition_bridge_topology(cluster3: Cluster) -> None:
    n1, n2, n3 = cluster3.hosts
    for h in cluster3.hosts:
        start_http(h)
    f = Partition.bridge(["n1", "n2", "n3"])
    f.apply(cluster3)
    try:
        assert not n1.can_connect(n3.address, 8080, timeout=0.3)
        assert not n3.can_connect(n1.address, 8080, timeout=0.3)
        assert n1.can_connect(n2.address, 8080) and n3.can_connect(n2.address, 8080)
    finally:
        f.heal(cluster3)
    assert n1.can_connect(n3.address, 8080)


def test_two_partitions_compose_and_heal_independently(cluster3: Cluster) -> None:
    n1, n2, n3 = cluster3.hosts
    for h in cluster3.hosts:
        start_http(h)
    a = Partition({"n1": ["n2"]}, label="a")
    b = Partition({"n2": ["n3"]}, label="b")
    a.apply(cluster3)
    b.apply(cluster3)
    assert not n1.can_connect(n2.address, 8080, timeout=0.3)
    assert not n2.can_connect(n3.address, 8080, timeout=0.3)
    assert n1.can_connect(n3.address, 8080)
    a.heal(cluster3)
    assert n1.can_connect(n2.address, 8080)
    assert not n2.can_connect(n3.address, 8080, timeout=0.3)
    b.heal(cluster3)
    assert n2.can_connect(n3.address, 8080)


def test_crash_kills_everything_and_heal_restarts(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    start_http(n2)
    n2.spawn("helper", ["sleep", "300"], service=False)
    assert len(n2.pids()) >= 2
    f = Crash("n2")
    detail = f.apply(cluster3)
    assert detail["killed"] >= 2
    assert n2.pids() == []
    assert not n1.can_connect(n2.address, 8080, timeout=0.3)
    f.heal(cluster3)
    n2.wait_port(8080)
    assert _http_get(n1, n2.address, 2.0)
    assert {p.name for p in n2.processes} == {"http"}  # non-services stay dead


def test_pause_answers_nothing_until_resumed(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    start_http(n2)
    assert _http_get(n1, n2.address, 2.0)
    f = Pause("n2")
    f.apply(cluster3)
    t = time.monotonic()
    assert not _http_get(n1, n2.address, 0.5)
    assert time.monotonic() - t >= 0.45
    assert n2.pids(), "a paused host keeps its processes"
    f.heal(cluster3)
    assert _http_get(n1, n2.address, 2.0)


SINK = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen()
while True:
    c, _ = s.accept(); n = 0
    while (b := c.recv(65536)):
        n += len(b)
    c.sendall(str(n).encode()); c.close()
"""


def _send_measure(host, addr: str, nbytes: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds to push ``nbytes`` to the sink and have it confirm receipt of all of them."""
    s = host.socket()
    s.settimeout(30)
    s.connect((addr, 9000))
    t = time.monotonic()
    s.sendall(b"\0" * nbytes)
    s.shutdown(socket.SHUT_WR)
    got = s.recv(64)
    elapsed = time.monotonic() - t
    s.close()
    assert int(got) == nbytes
    return elapsed


def test_bandwidth_limit_within_20_percent(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    n2.spawn("sink", [sys.executable, "-c", SINK])
    n2.wait_port(9000)
    unlimited = _send_measure(n1, n2.address, 2_000_000)
    rate = 8_000_000
    f = Bandwidth(["n1"], rate)
    f.apply(cluster3)
    nbytes = 1_500_000  # 1.5 s at 8 Mbit/s
    measured = nbytes * 8 / _send_measure(n1, n2.address, nbytes)
    f.heal(cluster3)
    assert abs(measured - rate) / rate <= 0.20, f"measured {measured:.0f} bit/s for {rate}"
    assert _send_measure(n1, n2.address, 2_000_000) < max(unlimited * 5, 0.5)


def test_packet_loss_drops_about_the_given_fraction(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    rx = n2.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((n2.address, 9100))
    tx = n1.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def count(n: int) -> int:
        # batches of 50 so the receive buffer never overflows (that would look like loss)
        got = 0
        for start in range(0, n, 50):
            for i in range(start, min(n, start + 50)):
                tx.sendto(str(i).encode(), (n2.address, 9100))
            rx.settimeout(0.2)
            try:
                while True:
                    rx.recv(64)
                    got += 1
            except TimeoutError:
                pass
        return got

    try:
        assert count(200) == 200
        f = PacketLoss(["n2"], 0.4)
        f.apply(cluster3)
        lost = 1 - count(1000) / 1000
        f.heal(cluster3)
        assert 0.32 <= lost <= 0.48, lost
        assert count(200) == 200
    finally:
        rx.close()
        tx.close()


def test_disk_full_refuses_writes_then_heals(cluster3: Cluster) -> None:
    n1 = cluster3.hosts[0]
    (n1.data_dir / "before").write_bytes(b"x" * 100_000)
    f = DiskFull("n1")
    f.apply(cluster3)
    r = n1.run(["sh", "-c", "head -c 100000 /dev/zero > /srv/data/after"])
    assert r.returncode != 0 and b"No space left" in r.stderr
    assert (n1.data_dir / "before").stat().st_size == 100_000
    f.heal(cluster3)
    r = n1.run(["sh", "-c", "head -c 1000000 /dev/zero > /srv/data/after"])
    assert r.returncode == 0, r.stderr
    assert not (n1.data_dir / DiskFull.BALLAST).exists()


CLOCK = r"""
import time
while True:
    print(f"{time.time():.1f}", flush=True); time.sleep(0.2)
"""


def test_clock_skew_moves_the_clock_of_running_processes() -> None:
    with Cluster(1, faketime=True) as c:
        h = c.hosts[0]
        p = h.spawn("clock", [sys.executable, "-c", CLOCK])

        def last() -> float:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                lines = p.output().split()
                if lines:
                    return float(lines[-1]) - time.time()
                time.sleep(0.05)
            raise AssertionError("no clock output")

        time.sleep(0.5)
        assert abs(last()) < 2
        f = ClockSkew("n1", 3600.0)
        f.apply(c)
        time.sleep(1.8)  # libfaketime re-reads its file at most every second
        assert 3590 < last() < 3610
        f.heal(c)
        time.sleep(1.8)
        assert abs(last()) < 5


def test_clock_skew_without_faketime_is_a_capability_error(cluster3: Cluster) -> None:
    with pytest.raises(CapabilityError, match="faketime=True"):
        ClockSkew("n1", 10.0).apply(cluster3)


def test_nemesis_records_timeline_and_heals_on_exception(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    start_http(n2)
    clock = Clock()
    history = History()

    async def scenario() -> None:
        async with Nemesis(cluster3, history, clock) as nem:
            await nem.apply(Partition.isolate("n2", cluster3.names, label="p1"))
            await nem.apply(Pause("n2", label="z1"))
            raise RuntimeError("workload blew up")

    with pytest.raises(RuntimeError, match="blew up"):
        asyncio.run(scenario())
    assert _http_get(n1, n2.address, 2.0), "final heal must undo every fault"
    acts = [(e.label, e.action) for e in history.faults]
    assert acts == [("p1", FaultAction.APPLY), ("z1", FaultAction.APPLY),
                    ("z1", FaultAction.HEAL), ("p1", FaultAction.HEAL)]
    windows = history.fault_windows()
    assert [w.label for w in windows] == ["p1", "z1"] and all(w.end < 1e9 for w in windows)


def test_fault_spec_errors() -> None:
    with pytest.raises(ConfigError):
        Partition.groups([["n1", "n2"], ["n2"]])
    with pytest.raises(ConfigError):
        Partition({"n1": ["n1"]})
    with pytest.raises(ConfigError):
        PacketLoss(["n1"], 1.5)
    with pytest.raises(ConfigError):
        Bandwidth(["n1"], 10)


def test_unknown_host_in_fault(cluster3: Cluster) -> None:
    with pytest.raises(ConfigError, match="no host 'n7'"):
        Crash("n7").apply(cluster3)


def test_apply_does_not_block_the_event_loop(cluster3: Cluster) -> None:
    """A fault applied mid-run must not stall the workload's loop (latency would lie)."""
    history, clock = History(), Clock()
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def scenario() -> None:
        stop = asyncio.Event()
        t = asyncio.create_task(ticker(stop))
        async with Nemesis(cluster3, history, clock, check_capabilities=False) as nem:
            for i in range(3):
                await nem.apply(Partition.isolate("n1", cluster3.names, label=f"p{i}"))
                await nem.heal(nem.active[f"p{i}"])
        stop.set()
        await t

    asyncio.run(scenario())
    assert statistics.median(gaps) < 0.01


def _rtt(host_from, addr: str, n: int = 7) -> float:  # type: ignore[no-untyped-def]
    """Median round trip of a small request on one connection, in seconds."""
    s = host_from.socket()
    s.settimeout(5)
    s.connect((addr, 9200))
    times = []
    for _ in range(n):
        t = time.monotonic()
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        times.append(time.monotonic() - t)
    s.close()
    return statistics.median(times)


ECHO = r"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9200)); s.listen()
def serve(c):
    while (b := c.recv(4096)):
        c.sendall(b)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""


def test_latency_through_proxy_within_tolerance(cluster3: Cluster) -> None:
    n1, n2, n3 = cluster3.hosts
    n2.spawn("echo", [sys.executable, "-c", ECHO])
    n2.wait_port(9200)
    n3.spawn("echo", [sys.executable, "-c", ECHO])
    n3.wait_port(9200)
    base = _rtt(n1, n2.address)
    history, clock = History(), Clock()

    async def scenario() -> tuple[float, float, float]:
        async with Nemesis(cluster3, history, clock) as nem:
            f = Latency(["n2"], delay_s=0.05, label="slow")
            await nem.apply(f)
            slowed = await asyncio.to_thread(_rtt, n1, n2.address)
            other = await asyncio.to_thread(_rtt, n1, n3.address)  # n1-n3 is not slowed
            await nem.heal(f)
            healed = await asyncio.to_thread(_rtt, n1, n2.address)
        return slowed, other, healed

    slowed, other, healed = asyncio.run(scenario())
    added = slowed - base
    assert 0.08 <= added <= 0.14, f"expected ~100 ms added round trip, got {added * 1000:.1f} ms"
    assert other < 0.03 and healed < 0.03
