"""Each fault takes effect and heals, shown by measurement on a real cluster."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import statistics
import time

import pytest
from conftest import ECHO, SINK, needs_root, rtt, send_measure, start_http

from infragym import CapabilityError, ConfigError
from infragym.history import Clock, FaultAction, History
from infragym.nemesis import (
    Bandwidth,
    ClockSkew,
    Crash,
    DiskFull,
    FaultSpec,
    Latency,
    Nemesis,
    PacketLoss,
    Partition,
    Pause,
    Schedule,
    ScheduledFault,
    sweep_schedule,
)
from infragym.sandbox import HOST_PYTHON, Cluster

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


def test_bandwidth_limit_within_20_percent(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    n2.spawn("sink", [HOST_PYTHON, "-c", SINK])
    n2.wait_port(9000)
    unlimited = send_measure(n1, n2.address, 2_000_000)
    rate = 8_000_000
    f = Bandwidth(["n1"], rate)
    f.apply(cluster3)
    nbytes = 1_500_000  # 1.5 s at 8 Mbit/s
    measured = nbytes * 8 / send_measure(n1, n2.address, nbytes)
    f.heal(cluster3)
    assert abs(measured - rate) / rate <= 0.20, f"measured {measured:.0f} bit/s for {rate}"
    assert send_measure(n1, n2.address, 2_000_000) < max(unlimited * 5, 0.5)


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
    assert not list(n1.data_dir.glob(DiskFull.BALLAST + "*"))


CLOCK = r"""
import time
while True:
    print(f"{time.time():.1f}", flush=True); time.sleep(0.2)
"""


def test_clock_skew_moves_the_clock_of_running_processes() -> None:
    with Cluster(1, faketime=True) as c:
        h = c.hosts[0]
        p = h.spawn("clock", [HOST_PYTHON, "-c", CLOCK])

        def last() -> float:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                lines = p.output().split()
                if lines:
                    return float(lines[-1]) - time.time()
                time.sleep(0.05)
            raise AssertionError("no clock output")

        def wait_for(lo: float, hi: float) -> float:
            # libfaketime re-reads its file about every second; allow a few on a busy machine
            deadline = time.monotonic() + 8
            while True:
                skew = last()
                if lo < skew < hi or time.monotonic() > deadline:
                    return skew
                time.sleep(0.1)

        time.sleep(0.5)
        assert abs(last()) < 2
        f = ClockSkew("n1", 3600.0)
        f.apply(c)
        skew = wait_for(3590, 3610)
        assert 3590 < skew < 3610, skew
        f.heal(c)
        skew = wait_for(-5, 5)
        assert abs(skew) < 5, skew


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


def test_latency_through_proxy_within_tolerance(cluster3: Cluster) -> None:
    n1, n2, n3 = cluster3.hosts
    n2.spawn("echo", [HOST_PYTHON, "-c", ECHO])
    n2.wait_port(9200)
    n3.spawn("echo", [HOST_PYTHON, "-c", ECHO])
    n3.wait_port(9200)
    base = rtt(n1.socket, n2.address)
    history, clock = History(), Clock()

    async def scenario() -> tuple[float, float, float]:
        async with Nemesis(cluster3, history, clock) as nem:
            f = Latency(["n2"], delay_s=0.05, label="slow")
            await nem.apply(f)
            slowed = await asyncio.to_thread(rtt, n1.socket, n2.address)
            other = await asyncio.to_thread(rtt, n1.socket, n3.address)  # n1-n3 is not slowed
            await nem.heal(f)
            healed = await asyncio.to_thread(rtt, n1.socket, n2.address)
        return slowed, other, healed

    slowed, other, healed = asyncio.run(scenario())
    added = slowed - base
    assert 0.08 <= added <= 0.14, f"expected ~100 ms added round trip, got {added * 1000:.1f} ms"
    assert other < 0.03 and healed < 0.03


# -- faults of one kind on one host overlap ----------------------------------------------


def test_two_pauses_compose_the_host_resumes_after_the_last(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    start_http(n2)
    a, b = Pause("n2", label="a"), Pause("n2", label="b")
    a.apply(cluster3)
    b.apply(cluster3)
    a.heal(cluster3)
    assert n2.cgroup.frozen(), "healing one pause must not resume a host another still pauses"
    assert not _http_get(n1, n2.address, 0.3)
    b.heal(cluster3)
    assert not n2.cgroup.frozen()
    assert _http_get(n1, n2.address, 2.0)


def test_two_crashes_compose_services_return_after_the_last(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    start_http(n2)
    a, b = Crash("n2", label="a"), Crash("n2", label="b")
    a.apply(cluster3)
    b.apply(cluster3)
    a.heal(cluster3)
    assert n2.pids() == [], "a host still crashed must not run its services"
    b.heal(cluster3)
    n2.wait_port(8080)
    assert _http_get(n1, n2.address, 2.0)


def _data_size(host) -> int:  # type: ignore[no-untyped-def]
    st = os.statvfs(host.data_dir)
    return st.f_blocks * st.f_frsize


def _write(host, nbytes: int) -> bool:  # type: ignore[no-untyped-def]
    r = host.run(["sh", "-c", f"head -c {nbytes} /dev/zero > /srv/data/probe"])
    host.run(["rm", "-f", "/srv/data/probe"])
    return r.returncode == 0


def test_two_disk_fulls_compose_and_the_disk_gets_its_size_back(cluster3: Cluster) -> None:
    n1 = cluster3.hosts[0]
    size = _data_size(n1)
    a, b = DiskFull("n1", label="a"), DiskFull("n1", label="b")
    a.apply(cluster3)
    b.apply(cluster3)
    a.heal(cluster3)
    assert not _write(n1, 100_000), "the disk must stay full while another disk-full is on"
    b.heal(cluster3)
    assert _data_size(n1) == size, "the tmpfs must get back its original size"
    assert _write(n1, 1_000_000)
    # overlapping the other way round restores the size too
    a.apply(cluster3)
    b.apply(cluster3)
    b.heal(cluster3)
    a.heal(cluster3)
    assert _data_size(n1) == size


def _tbf_rate(cluster: Cluster, host) -> str | None:  # type: ignore[no-untyped-def]
    """The rate the switch lets ``host`` send at (its shaper is outside the host)."""
    return cluster.switch.sending_limit(host.port)


def test_two_bandwidth_limits_compose_the_lowest_rate_applies(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    slow, fast = Bandwidth(["n1"], 2_000_000, "slow"), Bandwidth(["n1"], 8_000_000, "fast")
    slow.apply(cluster3)
    fast.apply(cluster3)
    assert _tbf_rate(cluster3, n1) == "2Mbit", "the lowest active limit applies"
    slow.heal(cluster3)
    assert _tbf_rate(cluster3, n1) == "8Mbit", "healing one limit keeps the other"
    # and it is really shaping: 1 MB at 8 Mbit/s takes about a second
    n2.spawn("sink", [HOST_PYTHON, "-c", SINK])
    n2.wait_port(9000)
    measured = 1_000_000 * 8 / send_measure(n1, n2.address, 1_000_000)
    assert measured < 8_000_000 * 1.2
    fast.heal(cluster3)
    assert _tbf_rate(cluster3, n1) is None


def test_clock_skews_compose_the_latest_active_offset_applies() -> None:
    with Cluster(1, faketime=True) as c:
        p = c.hosts[0].spawn("clock", [HOST_PYTHON, "-c", CLOCK])

        def settles_at(offset: float) -> bool:
            # libfaketime re-reads its file about every second; give it a few
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                time.sleep(0.3)
                lines = p.output().split()
                if lines and abs(float(lines[-1]) - time.time() - offset) < 5:
                    return True
            return False

        a, b = ClockSkew("n1", 3600.0, label="a"), ClockSkew("n1", 7200.0, label="b")
        a.apply(c)
        b.apply(c)
        assert settles_at(7200)
        b.heal(c)
        assert settles_at(3600), "healing the latest skew returns to the one still on"
        b.apply(c)
        a.heal(c)
        time.sleep(2.5)  # long enough that a wrong offset would have been read
        assert settles_at(7200), "healing an older skew keeps the latest"
        b.heal(c)
        assert settles_at(0)


# -- the nemesis runner on a real cluster ------------------------------------------------


def test_a_zero_length_fault_is_applied_then_healed(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    start_http(n2)
    history, clock = History(), Clock()
    sched = Schedule((
        ScheduledFault(0.2, 0.2, FaultSpec("pause", ("n2",)), "later"),
        ScheduledFault(0.0, 0.2, FaultSpec("pause", ("n2",)), "earlier"),
        ScheduledFault(0.5, 0.0, FaultSpec("pause", ("n2",)), "instant"),
    ))

    async def scenario() -> None:
        async with Nemesis(cluster3, history, clock) as nem:
            await nem.run(sched)
            assert nem.active == {}, f"faults left on after the schedule: {list(nem.active)}"
            assert not n2.cgroup.frozen()

    asyncio.run(scenario())
    assert [(e.label, e.action) for e in history.faults] == [
        ("earlier", FaultAction.APPLY),
        ("earlier", FaultAction.HEAL),  # heals of other faults come first at equal times
        ("later", FaultAction.APPLY),
        ("later", FaultAction.HEAL),
        ("instant", FaultAction.APPLY),
        ("instant", FaultAction.HEAL),
    ]
    assert _http_get(n1, n2.address, 2.0)


def test_the_nemesis_plays_a_whole_sweep_one_fault_at_a_time(cluster3: Cluster) -> None:
    for h in cluster3.hosts:
        start_http(h)
    history, clock = History(), Clock()
    sweep = sweep_schedule(cluster3.names, fault_s=0.3, gap_s=0.1, start=0.0)

    async def scenario() -> None:
        async with Nemesis(cluster3, history, clock) as nem:
            await nem.run(sweep)
            assert nem.active == {}

    asyncio.run(scenario())
    windows = history.fault_windows()
    assert [(w.fault, w.label) for w in windows] == [
        (k, f"{name}-{h}")
        for k, name in (("crash", "crash"), ("pause", "pause"), ("partition", "isolate"))
        for h in cluster3.names
    ]
    for a, b in itertools.pairwise(windows):
        assert a.end <= b.start  # one fault at a time
    n1 = cluster3.hosts[0]
    for h in cluster3.hosts:  # every host healed and serving again (a crash restarts it)
        assert _http_get(n1, h.address, 5.0), f"{h.name} does not answer after the sweep"


class _Marker(Partition):
    """A real (supported) fault kind whose apply yields to the loop before it acts."""

    def __init__(self, label: str) -> None:
        super().__init__({"n1": ["n2"]}, label)


def test_concurrent_applies_of_one_label_cannot_both_succeed(cluster3: Cluster) -> None:
    history, clock = History(), Clock()

    async def scenario() -> list[BaseException | None]:
        async with Nemesis(cluster3, history, clock) as nem:
            got = await asyncio.gather(
                nem.apply(_Marker("same")), nem.apply(_Marker("same")), return_exceptions=True
            )
            assert list(nem.active) == ["same"]
        return got

    results = asyncio.run(scenario())
    errors = [r for r in results if r is not None]
    assert len(errors) == 1 and isinstance(errors[0], ConfigError), results
    assert [e.action for e in history.faults] == [FaultAction.APPLY, FaultAction.HEAL]


def test_latency_spares_the_client_unless_asked(cluster3: Cluster) -> None:
    _, n2, _ = cluster3.hosts
    n2.spawn("echo", [HOST_PYTHON, "-c", ECHO])
    n2.wait_port(9200)

    def client_rtt() -> float:
        return rtt(cluster3.client_socket, n2.address)

    base = client_rtt()
    history, clock = History(), Clock()

    async def scenario() -> tuple[float, float, float]:
        async with Nemesis(cluster3, history, clock) as nem:
            spared = Latency(["n2"], delay_s=0.05, label="nodes-only")
            await nem.apply(spared)
            unaffected = await asyncio.to_thread(client_rtt)
            await nem.heal(spared)
            f = Latency(["n2"], delay_s=0.05, label="with-client", include_client=True)
            await nem.apply(f)
            slowed = await asyncio.to_thread(client_rtt)
            await nem.heal(f)
            healed = await asyncio.to_thread(client_rtt)
        return unaffected, slowed, healed

    unaffected, slowed, healed = asyncio.run(scenario())
    assert unaffected < 0.03, f"client RTT {unaffected * 1000:.1f} ms with include_client off"
    added = slowed - base
    assert 0.08 <= added <= 0.14, f"expected ~100 ms added client RTT, got {added * 1000:.1f} ms"
    assert healed < 0.03
    links = history.faults[2].detail["links"]
    assert "client->n2" in links and "n2->client" in links
