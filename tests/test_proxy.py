"""The link proxy on a real cluster: delay, jitter, exact relay, resets, blackholes, cleanup.

Two hosts, pa and pb; an echo server runs on pb as a host process, clients run in pa's
namespace on the test's event loop; the switch diverts the link to the proxy's namespace.
Timing tolerances are wide: they separate "delayed by 100 ms" from "not delayed", not
milliseconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest

from infragym import ConfigError, ResourceError
from infragym.nemesis import _proxy
from infragym.nemesis._proxy import (
    TABLE_PREFIX,
    LinkHandle,
    LinkProxy,
    socket_in_netns,
)
from infragym.nemesis._proxy_probe import proxy_available
from infragym.sandbox import HOST_PYTHON, Cluster
from infragym.sandbox._switch import run_tables

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="needs root: creates network namespaces and nft rules",
    ),
]

T = TypeVar("T")

PORT, CLOSED_PORT = 7000, 7001

ECHO_SERVER = r"""
import socket, socketserver, struct, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while data := sock.recv(65536):
                if data == b"reset!":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    return
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
Server((sys.argv[1], int(sys.argv[2])), Echo).serve_forever()
"""


@dataclass(frozen=True)
class Net:
    cluster: Cluster
    a: str
    b: str

    @property
    def a_ip(self) -> str:
        return self.cluster.host("pa").address

    @property
    def b_ip(self) -> str:
        return self.cluster.host("pb").address


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=20, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{argv}: {done.stderr}")
    return done.stdout


def tables(netns: str) -> str:
    return sh("ip", "netns", "exec", netns, "nft", "list", "tables")


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    with Cluster(["pa", "pb"]) as c:
        pb = c.host("pb")
        pb.spawn("echo", [HOST_PYTHON, "-c", ECHO_SERVER, pb.address, str(PORT)])
        pb.wait_port(PORT)
        yield Net(c, c.host("pa").netns, pb.netns)


def run(body: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await body()

    return asyncio.run(bounded())


async def connect(net: Net, ip: str | None = None, port: int = PORT) -> socket.socket:
    """A connection from pa to pb's echo server (or to ``ip:port``)."""
    sock = await asyncio.to_thread(socket_in_netns, net.a)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (ip or net.b_ip, port)), 5
        )
    except BaseException:
        sock.close()
        raise
    return sock


async def recv_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < n:
        chunk = await loop.sock_recv(sock, n - len(data))
        if not chunk:
            raise ConnectionError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


async def rtts_ms(sock: socket.socket, count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    out = []
    for i in range(count):
        payload = f"ping {i:06d}".encode()
        start = time.perf_counter()
        await loop.sock_sendall(sock, payload)
        assert await recv_exactly(sock, len(payload)) == payload
        out.append((time.perf_counter() - start) * 1000)
    return out


def iqr(samples: list[float]) -> float:
    quartiles = statistics.quantiles(samples, n=4)
    return quartiles[2] - quartiles[0]


async def median_rtt_ms(net: Net, count: int = 15) -> float:
    with await connect(net) as sock:
        return statistics.median(await rtts_ms(sock, count))


async def echo_stream(net: Net, data: bytes, chunk: int = 50_000) -> bytes:
    """Send ``data``, half-close, and read the echo until the server's EOF."""
    loop = asyncio.get_running_loop()
    with await connect(net) as sock:

        async def send() -> None:
            for i in range(0, len(data), chunk):
                await loop.sock_sendall(sock, data[i : i + chunk])
            sock.shutdown(socket.SHUT_WR)

        sender = asyncio.create_task(send())
        got = bytearray()
        while chunk_in := await loop.sock_recv(sock, 65536):
            got += chunk_in
        await sender
        return bytes(got)


async def expect_reset(sock: socket.socket, timeout: float = 2.0) -> None:
    """The peer resets: the next read fails (an orderly EOF would not be a reset)."""
    loop = asyncio.get_running_loop()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(loop.sock_sendall(sock, b"x"), timeout)
        await asyncio.wait_for(loop.sock_recv(sock, 1), timeout)


async def wait_idle(proxy: LinkProxy, handle: LinkHandle) -> None:
    for _ in range(200):
        if proxy.stats(handle).active == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("proxied connections did not end")


def test_socket_in_netns_lives_there_and_caller_stays(net: Net) -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    with socket_in_netns(net.a) as inside:
        inside.bind((net.a_ip, 0))
    with socket.socket() as outside, pytest.raises(OSError):
        outside.bind((net.a_ip, 0))
    assert os.readlink("/proc/thread-self/ns/net") == before


def test_probe_reports_available(net: Net) -> None:
    ok, why = proxy_available(net.cluster)
    assert ok, why


def test_delay_adds_round_trip_and_heal_restores(net: Net) -> None:
    figures: dict[str, float] = {}

    async def body() -> None:
        base = figures["base"] = await median_rtt_ms(net)
        async with LinkProxy(net.cluster) as proxy:
            link = await proxy.add_link("pa", "pb", delay_s=0.05)
            assert TABLE_PREFIX in tables(proxy.netns)
            held = await connect(net)
            with held:
                delayed = figures["delay 50ms"] = statistics.median(await rtts_ms(held, 10))
                assert 80 <= delayed - base <= 120
                await proxy.update(link, delay_s=0.02)
                updated = figures["delay 20ms"] = await median_rtt_ms(net, 10)
                assert 25 <= updated - base <= 55
                await proxy.remove_link(link)
                assert "redirect" not in sh(
                    "ip", "netns", "exec", proxy.netns, "nft", "list", "ruleset"
                )
                healed = figures["healed"] = await median_rtt_ms(net)
                assert healed < base + 10
                kept = figures["kept conn"] = statistics.median(await rtts_ms(held, 10))
                assert kept < base + 10
            assert proxy.stats(link).connections == 2
            await wait_idle(proxy, link)

    run(body)
    print("median RTT ms:", {k: round(v, 2) for k, v in figures.items()})


def test_jitter_spreads_rtt_and_never_reorders(net: Net) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        async with LinkProxy(net.cluster) as proxy:
            link = await proxy.add_link("pa", "pb", delay_s=0.04, seed=7)
            with await connect(net) as sock:
                steady = iqr(await rtts_ms(sock, 20))
            await proxy.update(link, jitter_s=0.04)
            with await connect(net) as sock:
                jittery = iqr(await rtts_ms(sock, 20))
            print(f"RTT interquartile range ms: no jitter {steady:.2f}, jitter 40ms {jittery:.2f}")
            assert jittery > steady + 15
            records = b"".join(b"%07d\n" % i for i in range(20_000))
            rng = random.Random(3)
            with await connect(net) as sock:

                async def send() -> None:
                    at = 0
                    while at < len(records):
                        step = 8 * rng.randint(1, 400)
                        await loop.sock_sendall(sock, records[at : at + step])
                        at += step
                        await asyncio.sleep(0.0005 * rng.random())

                sender = asyncio.create_task(send())
                got = await recv_exactly(sock, len(records))
                await sender
            assert got == records

    run(body)


def test_relays_exactly_concurrently_with_half_close(net: Net) -> None:
    async def body() -> None:
        async with LinkProxy(net.cluster) as proxy:
            link = await proxy.add_link("pa", "pb", delay_s=0.005, jitter_s=0.002, seed=1)
            big = os.urandom(1 << 20)
            assert (
                hashlib.sha256(await echo_stream(net, big)).digest() == hashlib.sha256(big).digest()
            )
            blobs = [os.urandom(random.Random(i).randint(1, 200_000)) for i in range(20)]
            echoes = await asyncio.gather(*(echo_stream(net, blob) for blob in blobs))
            assert echoes == blobs
            stats = proxy.stats(link)
            total = len(big) + sum(map(len, blobs))
            assert (stats.connections, stats.bytes_to_dst, stats.bytes_from_dst) == (
                21,
                total,
                total,
            )
            await wait_idle(proxy, link)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(body)


def test_upstream_refusal_and_reset_reach_the_client(net: Net) -> None:
    async def body() -> None:
        async with LinkProxy(net.cluster) as proxy:
            link = await proxy.add_link("pa", "pb", delay_s=0.05)
            start = time.monotonic()
            with await connect(net, port=CLOSED_PORT) as sock:
                await expect_reset(sock)
            assert time.monotonic() - start < 2
            assert proxy.stats(link).failed == 1
            with await connect(net) as sock:
                await rtts_ms(sock, 1)
                await asyncio.get_running_loop().sock_sendall(sock, b"reset!")
                with pytest.raises(ConnectionResetError):
                    await asyncio.wait_for(recv_exactly(sock, 1), 2)

    run(body)


def test_reset_mode_resets_existing_and_new_connections(net: Net) -> None:
    async def body() -> None:
        async with LinkProxy(net.cluster) as proxy:
            link = await proxy.add_link("pa", "pb")
            with await connect(net) as old:
                await rtts_ms(old, 1)
                await proxy.update(link, mode="reset")
                await expect_reset(old)
            with await connect(net) as new:
                await expect_reset(new)
            await proxy.update(link, mode="delay")
            await median_rtt_ms(net, 2)

    run(body)


def test_blackhole_stalls_without_loss_until_healed(net: Net) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        async with LinkProxy(net.cluster) as proxy:
            link = await proxy.add_link("pa", "pb")
            with await connect(net) as old:
                await rtts_ms(old, 1)
                await proxy.update(link, mode="blackhole")
                with await connect(net) as new:
                    for sock in (old, new):
                        await loop.sock_sendall(sock, b"held")
                    for sock in (old, new):
                        with pytest.raises(TimeoutError):
                            await asyncio.wait_for(loop.sock_recv(sock, 4), 0.3)
                    await proxy.update(link, mode="delay")
                    for sock in (old, new):
                        assert await asyncio.wait_for(recv_exactly(sock, 4), 2) == b"held"

    run(body)


def test_endpoints_cannot_reach_the_listener_directly(net: Net) -> None:
    """Only the switch's diversion reaches the proxy: its guard drops what an endpoint
    addresses to the proxy itself."""

    async def body() -> None:
        async with LinkProxy(net.cluster) as proxy:
            link = await proxy.add_link("pa", "pb")
            proxy_ip = net.cluster.port("link-proxy").address
            with pytest.raises(OSError):
                await asyncio.wait_for(connect(net, proxy_ip, link.listen_port), 2)
            assert proxy.stats(link).connections == 0

    run(body)


def test_destination_sees_the_source_and_older_connections_keep_their_path(net: Net) -> None:
    """The upstream socket is transparent: pb sees pa's address, as without the proxy. A
    connection from before the link is routed on through the proxy's namespace unslowed."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        server = await asyncio.to_thread(socket_in_netns, net.b)
        with server:
            server.bind((net.b_ip, 0))
            server.listen(4)
            server.setblocking(False)
            port = server.getsockname()[1]
            with await connect(net) as before:
                base = statistics.median(await rtts_ms(before, 5))
                async with LinkProxy(net.cluster) as proxy:
                    link = await proxy.add_link("pa", "pb", delay_s=0.05)
                    with await connect(net, net.b_ip, port):
                        accepted, peer = await asyncio.wait_for(loop.sock_accept(server), 5)
                        accepted.close()
                    assert peer[0] == net.a_ip
                    assert proxy.stats(link).connections == 1
                    still = statistics.median(await rtts_ms(before, 5))
                    assert still < base + 10
                    assert proxy.stats(link).connections == 1

    run(body)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads_in(netns: str) -> int:
    """Threads of this process inside ``netns``: each one pins the namespace."""
    target = f"net:[{os.stat(f'/var/run/netns/{netns}').st_ino}]"
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            count += os.readlink(f"/proc/self/task/{tid}/ns/net") == target
        except FileNotFoundError:
            pass
    return count


def switch_tables(net: Net) -> list[str]:
    return run_tables(net.cluster.run_id)


def test_close_undoes_everything_and_is_idempotent(net: Net) -> None:
    async def body() -> None:
        fds = open_fds()
        proxy = LinkProxy(net.cluster)
        await proxy.start()
        to_b = await proxy.add_link("pa", "pb", delay_s=0.2)
        await proxy.add_link("pb", "pa", delay_s=0.2)
        switch_table = net.cluster.switch.table(proxy.switch_table)
        assert proxy.table in tables(proxy.netns) and switch_table in switch_tables(net)
        assert threads_in(proxy.netns) == 1
        with await connect(net) as held:
            await proxy.close()
            await expect_reset(held)
        await proxy.close()
        assert TABLE_PREFIX not in tables(proxy.netns)
        assert switch_table not in switch_tables(net)
        assert open_fds() == fds
        for _ in range(100):
            if threads_in(proxy.netns) == 0:
                break
            await asyncio.sleep(0.01)
        assert threads_in(proxy.netns) == 0
        assert await median_rtt_ms(net, 3) < 50
        assert not proxy.links
        with pytest.raises(ConfigError):
            proxy.stats(to_b)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(body)


def test_failed_add_link_leaves_nothing_behind(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_rule(table: str, *args: object) -> str:
        return f"add rule ip {table} listeners no-such-expression"

    async def body() -> None:
        fds = open_fds()
        async with LinkProxy(net.cluster) as proxy:
            monkeypatch.setattr(_proxy, "redirect_rule", broken_rule)
            with pytest.raises(ResourceError, match="nft in netns"):
                await proxy.add_link("pa", "pb", delay_s=0.01)
            assert not proxy.links
            assert "redirect" not in sh(
                "ip", "netns", "exec", proxy.netns, "nft", "list", "ruleset"
            )
            table = net.cluster.switch.table(proxy.switch_table)
            assert "ether daddr set" not in sh("nft", "list", "table", "bridge", table)
            monkeypatch.undo()
            link = await proxy.add_link("pa", "pb", delay_s=0.05)
            assert await median_rtt_ms(net, 3) > 80
            assert proxy.stats(link).connections == 1
        assert open_fds() == fds

    run(body)


def test_rejects_bad_input(net: Net) -> None:
    async def body() -> None:
        async with LinkProxy(net.cluster) as proxy:
            for bad in (
                {"dst": "nope"},
                {"src": "nope"},
                {"dst": "pa"},
                {"dst": "link-proxy"},
                {"delay_s": -1.0},
                {"jitter_s": float("nan")},
                {"mode": "slow"},
            ):
                kwargs = {"src": "pa", "dst": "pb", **bad}
                with pytest.raises(ConfigError):
                    await proxy.add_link(**kwargs)  # type: ignore[arg-type]
            link = await proxy.add_link("pa", "pb")
            with pytest.raises(ConfigError, match="already proxied"):
                await proxy.add_link("pa", "pb")
            await proxy.remove_link(link)
            with pytest.raises(ConfigError):
                await proxy.update(link, delay_s=0.1)
            again = await proxy.add_link("pa", "pb")
            assert again.id != link.id
        with pytest.raises(Exception, match="closed"):
            await proxy.add_link("pa", "pb")

    run(body)
