"""Hosts granted CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE (``net_admin``) in
their own network namespace try every way out, from inside, as the code under test would.

Each fault here would be escaped had it stayed inside the hosts' namespaces (a flush, a
deleted qdisc, IPv6 or a spoofed source around an IPv4 rule), and each attack on the
switch is shown to work once the guard is taken away (a positive control), so the test
proves the guard, not a broken attack. A virtual IP (keepalived's use) still works.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from conftest import (
    ECHO,
    SINK,
    assert_no_leftovers,
    leftovers,
    needs_root,
    rtt,
    send_measure,
    start_http,
)
from orphans import orphan_at_moved_vip

from infragym import ConfigError
from infragym.history import Clock, History
from infragym.nemesis import Bandwidth, Latency, Nemesis, PacketLoss, Partition
from infragym.sandbox import HOST_PYTHON, Cluster, Host, _network, cleanup

pytestmark = needs_root

# Python run on a host: raw frames, as a program holding CAP_NET_RAW writes them.
FRAMES = r"""
import socket, struct, sys, time
def mac(s): return bytes.fromhex(s.replace(":", ""))
def ip(s): return socket.inet_aton(s)
def csum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b)); s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
def udp(src_mac, dst_mac, src_ip, dst_ip, dport, payload):
    body = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 17, 0,
                    ip(src_ip), ip(dst_ip))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + h + body
def garp(src_mac, address):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac(src_mac), ip(address),
                      b"\0" * 6, ip(address))
    return b"\xff" * 6 + mac(src_mac) + b"\x08\x06" + arp
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
raw.bind(("eth0", 0))
"""

SEND_UDP = (
    FRAMES
    + r"""
src_mac, dst_mac, src_ip, dst_ip, port = sys.argv[1:6]
for i in range(5):
    raw.send(udp(src_mac, dst_mac, src_ip, dst_ip, int(port), b"spoofed"))
    time.sleep(0.02)
print("SENT")
"""
)

SEND_GARP = (
    FRAMES
    + r"""
src_mac, address = sys.argv[1:3]
for _ in range(3):
    raw.send(garp(src_mac, address))
    time.sleep(0.05)
print("SENT")
"""
)

# Sniff eth0 in promiscuous mode for ``seconds`` while stealing the victim's port of the
# bridge (frames carrying the victim's MAC as their source); count IPv4 frames between
# two other endpoints, and those of our own address.
SNIFF = (
    FRAMES
    + r"""
me, victim_mac, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
raw.setsockopt(263, 1, struct.pack("iHH8s", socket.if_nametoindex("eth0"), 1, 0, b""))
raw.settimeout(0.01)
foreign = own = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    raw.send(b"\xff" * 6 + mac(victim_mac) + b"\x88\xb5" + b"steal" * 10)
    stop = time.monotonic() + 0.02
    while time.monotonic() < stop:
        try:
            frame = raw.recv(65536)
        except TimeoutError:
            continue
        if frame[12:14] != b"\x08\x00" or frame[0] & 1:
            continue
        src, dst = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
        if me in (src, dst):
            own += 1
        else:
            foreign += 1
print("foreign", foreign, "own", own)
"""
)

# Dump the links of the namespaces the host's namespace has ids for (the root namespace is
# one: the peer of its veth lives there) and try to delete ``link`` in each, through
# rtnetlink's IFLA_TARGET_NETNSID; print what each attempt returned.
TARGET_NETNSID = r"""
import socket, struct, sys
link = sys.argv[1]
def attr(t, data):
    n = 4 + len(data)
    return struct.pack("HH", n, t) + data + b"\0" * (-n % 4)
def ask(kind, flags, body):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.send(struct.pack("IHHII", 16 + len(body), kind, flags, 1, 0) + body)
    data, names = s.recv(1 << 16), []
    while data:
        n, t = struct.unpack_from("IH", data)
        if t == 2:
            return struct.unpack_from("i", data, 16)[0], names
        if t == 3:
            return 0, names
        a = 32
        while a < n:
            al, at = struct.unpack_from("HH", data, a)
            if at == 3:
                names.append(data[a + 4 : a + al - 1].decode())
            a += (al + 3) & ~3
        data = data[(n + 3) & ~3 :] or s.recv(1 << 16)
    return 0, names
ifi = struct.pack("BxHiII", 0, 0, 0, 0, 0)
for nsid in range(4):
    target = attr(46, struct.pack("i", nsid))
    err, names = ask(18, 0x301, ifi + target)
    gone, _ = ask(17, 0x5, ifi + target + attr(3, link.encode() + b"\0"))
    print(nsid, err, gone, ",".join(names) or "-")
"""


def sh(host: Host, script: str, timeout: float = 20) -> str:
    r = host.run(["sh", "-c", script], timeout=timeout)
    return (r.stdout + r.stderr).decode()


def py(host: Host, script: str, *args: str, timeout: float = 20) -> str:
    r = host.run([HOST_PYTHON, "-c", script, *args], timeout=timeout)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 0, out
    return out


def get(c: Cluster, address: str, timeout: float = 2.0) -> str | None:
    """GET / from the client namespace: the name of the host that answered, or None."""
    s = c.client_socket()
    s.settimeout(timeout)
    try:
        s.connect((address, 8080))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        return reply.split(b"\r\n\r\n", 1)[1].decode()
    except OSError:
        return None
    finally:
        s.close()


class Inbox:
    """A UDP socket in a host's namespace, and what it received."""

    def __init__(self, host: Host) -> None:
        self.sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host.address, 0))
        self.port = self.sock.getsockname()[1]

    def drain(self, timeout: float = 0.5) -> list[bytes]:
        got = []
        self.sock.settimeout(timeout)
        try:
            while True:
                got.append(self.sock.recv(100))
        except TimeoutError:
            return got

    def close(self) -> None:
        self.sock.close()


ESCAPE = (
    "nft flush ruleset && "
    "nft add table inet open && "
    "nft add chain inet open i '{ type filter hook input priority -1000; policy accept; }' && "
    "nft add chain inet open o '{ type filter hook output priority -1000; policy accept; }' && "
    "nft add rule inet open i accept && nft add rule inet open o accept && "
    "tc qdisc del dev eth0 root && "
    "ip neigh flush dev eth0 && "
    "echo ESCAPED"
)
"""What a host holding CAP_NET_ADMIN would do to shake off faults enforced in its own
namespace: flush every nft rule, accept everything first, drop its qdisc."""

# what the faults used to put in a host's own namespace: an nft table, a tbf qdisc
PLANT = (
    "nft add table inet infragym_fault && "
    "nft add chain inet infragym_fault i '{ type filter hook input priority -10; }' && "
    "tc qdisc add dev eth0 root tbf rate 1mbit burst 32kb latency 100ms"
)


@pytest.fixture
def c() -> Iterator[Cluster]:
    with Cluster(3, net_admin=["n1", "n2", "n3"]) as cluster:
        for h in cluster.hosts:
            start_http(h)
        yield cluster
    assert_no_leftovers(cluster.run_id)


def escape_everywhere(c: Cluster) -> None:
    """Every host runs :data:`ESCAPE`, which is shown to remove what a fault enforced
    in the host's own namespace would have been (planted there first, by root)."""
    for h in c.hosts:
        subprocess.run(["ip", "netns", "exec", h.netns, "sh", "-c", PLANT], check=True)
        assert "ESCAPED" in sh(h, ESCAPE)
        left = subprocess.run(
            ["ip", "netns", "exec", h.netns, "sh", "-c", "nft list tables; tc qdisc show dev eth0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "infragym_fault" not in left and "tbf" not in left, left


def test_capabilities_hold_in_the_hosts_own_namespace_only() -> None:
    with Cluster(2, net_admin=["n1"]) as c:
        n1, n2 = c.hosts
        vip = c.free_addresses()[0]
        out = sh(
            n1,
            f"id -u; grep CapEff /proc/self/status; ip addr add {vip}/24 dev eth0 "
            "&& ip route add 198.18.0.0/15 dev eth0 && nft add table inet t && "
            "echo ADMIN-OK; unshare -n true 2>&1 || echo NO-NEW-NETNS",
        )
        assert c.identity is not None and out.split()[0] == str(c.identity.uid), out
        assert "0000000000003400" in out, out
        assert "ADMIN-OK" in out and "NO-NEW-NETNS" in out, out
        assert "0000000000000000" in sh(n2, "grep CapEff /proc/self/status")
        # the root namespace and every other host's namespace are out of reach, though
        # the host's namespace knows their ids (with the capability held in the machine's
        # user namespace, the dump lists the machine's links and the delete succeeds)
        out = py(n1, TARGET_NETNSID, n1.port.link)
        assert len(out.splitlines()) == 4, out
        for line in out.splitlines():
            nsid, _, gone, names = line.split()
            assert names == "-", f"nsid {nsid}: the host listed links outside its namespace"
            assert int(gone) < 0, f"nsid {nsid}: the host deleted a link outside its namespace"
        assert os.path.exists(f"/sys/class/net/{n1.port.link}")
    with pytest.raises(ConfigError, match="n9"):
        Cluster(2, net_admin=["n9"])


def test_partition_holds_when_every_host_flushes_and_reroutes(c: Cluster) -> None:
    n1, n2, n3 = c.hosts
    p = Partition.isolate("n1", c.names)
    p.apply(c)
    escape_everywhere(c)
    # around the cut: through n3, which forwards
    reroute = f"ip route replace {n2.address}/32 via {n3.address} dev eth0 && echo ROUTED"
    assert "ROUTED" in sh(n1, reroute)
    sh(n3, "echo 1 > /proc/sys/net/ipv4/ip_forward")
    reach = (
        f"import socket; s = socket.socket(); s.settimeout(1)\n"
        f"print('REACHED' if s.connect_ex(('{n2.address}', 8080)) == 0 else 'CUT')"
    )
    assert "CUT" in py(n1, reach)
    assert not n2.can_connect(n1.address, 8080, timeout=0.5)
    assert not n3.can_connect(n1.address, 8080, timeout=0.5)
    assert get(c, n1.address) == "n1", "the client is never cut"
    p.heal(c)
    sh(n1, f"ip route del {n2.address}/32")
    assert n2.can_connect(n1.address, 8080) and "REACHED" in py(n1, reach)


def test_a_partition_holds_through_a_slowed_link_and_a_third_hosts_mac(c: Cluster) -> None:
    """While n1 is both cut from n2 and slowed (its links diverted to the link proxy), n1
    sends its frames for n2's address to n3's MAC, and n3 forwards: neither the proxy nor
    n3 may carry them to n2."""
    n1, n2, n3 = c.hosts
    reach = (
        "import socket; s = socket.socket(); s.settimeout(1)\n"
        f"print('REACHED' if s.connect_ex(('{n2.address}', 8080)) == 0 else 'CUT')"
    )

    async def scenario() -> tuple[str, str]:
        async with Nemesis(c, History(), Clock()) as nem:
            await nem.apply(Latency(["n1"], delay_s=0.02, label="slow"))
            slowed = await asyncio.to_thread(py, n1, reach)
            await nem.apply(Partition({"n1": ["n2"]}, label="cut"))
            await asyncio.to_thread(escape_everywhere, c)
            sh(n3, "echo 1 > /proc/sys/net/ipv4/ip_forward")
            sh(n1, f"ip neigh replace {n2.address} lladdr {n3.mac} dev eth0 nud permanent")
            return slowed, await asyncio.to_thread(py, n1, reach)

    slowed, cut = asyncio.run(scenario())
    assert "REACHED" in slowed and "CUT" in cut, (slowed, cut)


def test_ipv6_does_not_cross_a_partition(c: Cluster) -> None:
    n1, n2, _ = c.hosts
    listen = (
        "import socket; s = socket.socket(socket.AF_INET6); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        "s.bind(('fe80::2', 9300, 0, socket.if_nametoindex('eth0'))); s.listen()\n"
        "while True: s.accept()[0].close()"
    )
    for h, addr in ((n1, "fe80::1"), (n2, "fe80::2")):
        sh(
            h,
            "echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6; "
            f"ip -6 addr add {addr}/64 dev eth0 nodad",
        )
    n2.spawn("listen6", [HOST_PYTHON, "-c", listen])
    n2.wait_port(9300)
    connect = (
        "import socket; s = socket.socket(socket.AF_INET6); s.settimeout(1)\n"
        "r = s.connect_ex(('fe80::2', 9300, 0, socket.if_nametoindex('eth0')))\n"
        "print('REACHED' if r == 0 else 'CUT')"
    )
    c.switch.delete("guard")  # positive control: IPv6 between the hosts works
    try:
        assert "REACHED" in py(n1, connect)
    finally:
        c.network.guard()  # type: ignore[union-attr]
    p = Partition({"n1": ["n2"]})
    p.apply(c)
    escape_everywhere(c)
    assert "CUT" in py(n1, connect)
    p.heal(c)
    assert "CUT" in py(n1, connect), "hosts speak IPv4 and ARP only, on the switch"


def test_spoofed_sources_neither_cross_a_partition_nor_impersonate(c: Cluster) -> None:
    n1, n2, n3 = c.hosts
    vip = c.free_addresses()[0]
    inbox = Inbox(n2)
    try:

        def spoof(src_ip: str) -> int:
            py(n1, SEND_UDP, n1.mac, n2.mac, src_ip, n2.address, str(inbox.port))
            return len(inbox.drain())

        assert spoof(n1.address) == 5, "n1's own datagrams reach n2"
        assert spoof(vip) == 5, "a free address (a virtual IP) is n1's to use"
        assert spoof(n3.address) == 0, "n1 must not speak as n3"
        c.switch.delete("guard")  # positive control: the frames are well formed
        try:
            assert spoof(n3.address) == 5
        finally:
            c.network.guard()  # type: ignore[union-attr]
        p = Partition({"n1": ["n2"]})
        p.apply(c)
        escape_everywhere(c)
        for src in (n1.address, vip, n3.address):
            assert spoof(src) == 0, f"a datagram from {src} crossed the partition"
        p.heal(c)
        assert spoof(n1.address) == 5
    finally:
        inbox.close()


def test_a_host_cannot_take_another_hosts_address_or_mac(c: Cluster) -> None:
    n1, n2, _ = c.hosts
    assert get(c, n2.address) == "n2"  # the client now has n2's MAC in its ARP cache
    time.sleep(1.2)  # past the neighbour entry's lock time: an update would be taken

    def steal() -> None:
        sh(n1, f"ip addr add {n2.address}/32 dev eth0")
        py(n1, SEND_GARP, n1.mac, n2.address)

    steal()
    assert get(c, n2.address) == "n2"
    sh(n1, f"ip link set eth0 address {n2.mac}")
    py(n1, SEND_GARP, n2.mac, n2.address)
    assert get(c, n2.address) == "n2"
    sh(n1, f"ip link set eth0 address {n1.mac}")
    time.sleep(1.2)
    c.switch.delete("guard")  # positive control: without the guard the address is taken
    try:
        steal()
        assert get(c, n2.address) == "n1"
    finally:
        c.network.guard()  # type: ignore[union-attr]
        sh(n1, f"ip addr del {n2.address}/32 dev eth0")


def _sniff(c: Cluster, seconds: float = 2.0) -> tuple[int, int, int]:
    """(frames between other endpoints, frames of n1's own, requests answered meanwhile)."""
    n1, n2, n3 = c.hosts
    out: list[str] = []
    sniffer = threading.Thread(
        target=lambda: out.append(py(n1, SNIFF, n1.address, n2.mac, str(seconds)))
    )
    sniffer.start()
    time.sleep(0.3)
    answered = 0
    while sniffer.is_alive():
        answered += get(c, n2.address, 0.3) == "n2"
        answered += n3.can_connect(n2.address, 8080, 0.3)
        answered += get(c, n1.address, 0.3) == "n1"
    sniffer.join()
    foreign, own = (int(x) for x in out[0].split()[1::2])
    return foreign, own, answered


def test_a_raw_socket_sees_only_its_own_links_traffic(c: Cluster) -> None:
    foreign, own, answered = _sniff(c)
    assert answered >= 6, "traffic must have flowed while n1 sniffed"
    assert own > 0, "the sniffer sees its own traffic"
    assert foreign == 0, f"n1 saw {foreign} frames between other endpoints"
    c.switch.delete("guard")  # positive control: stealing n2's port shows its traffic
    try:
        foreign, _, _ = _sniff(c)
        assert foreign > 0
    finally:
        c.network.guard()  # type: ignore[union-attr]


def test_a_host_cannot_reach_the_machines_namespace(c: Cluster) -> None:
    """Were the root namespace to hold an address the hosts can resolve (here: one put on
    the cluster's bridge; the machine's own addresses answer ARP on any interface), a
    host could send it packets; the guard keeps the bridge from delivering any."""
    n1 = c.hosts[0]
    address = c.free_addresses()[-1]
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", c.bridge], check=True)
    inbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        inbox.bind((address, 0))
        send = (
            "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for _ in range(6):\n"
            f"    s.sendto(b'x', ('{address}', {inbox.getsockname()[1]})); time.sleep(0.3)"
        )

        def arrived() -> int:
            sh(n1, f"ip route replace {address}/32 dev eth0; ip neigh flush dev eth0")
            py(n1, send)
            inbox.settimeout(0.3)
            n = 0
            try:
                while inbox.recv(10):
                    n += 1
            except TimeoutError:
                return n

        assert arrived() == 0
        c.switch.delete("guard")  # positive control
        try:
            assert arrived() > 0
        finally:
            c.network.guard()  # type: ignore[union-attr]
    finally:
        inbox.close()
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", c.bridge], check=False)


def test_a_virtual_ip_moves_by_gratuitous_arp(c: Cluster) -> None:
    """keepalived's use: a free address of the subnet on one host, then on another, with
    gratuitous ARP telling the client at once (its cache still points at the old MAC)."""
    n1, n2, _ = c.hosts
    vip = c.free_addresses()[5]
    sh(n2, f"ip addr add {vip}/24 dev eth0")
    py(n2, SEND_GARP, n2.mac, vip)
    assert get(c, vip) == "n2"
    time.sleep(1.2)  # past the lock time of the client's neighbour entry
    sh(n2, f"ip addr del {vip}/24 dev eth0")
    sh(n1, f"ip addr add {vip}/24 dev eth0")
    py(n1, SEND_GARP, n1.mac, vip)
    assert get(c, vip, 1.0) == "n1"
    p = Partition.isolate("n3", c.names)  # a fault elsewhere changes nothing
    p.apply(c)
    assert get(c, vip) == "n1"
    p.heal(c)


def test_latency_holds_when_the_hosts_flush_their_rules(c: Cluster) -> None:
    n1, n2, _ = c.hosts
    n2.spawn("echo", [HOST_PYTHON, "-c", ECHO])
    n2.wait_port(9200)
    base = rtt(n1.socket, n2.address)

    async def scenario() -> float:
        async with Nemesis(c, History(), Clock()) as nem:
            f = Latency(["n2"], delay_s=0.05, label="slow")
            await nem.apply(f)
            await asyncio.to_thread(escape_everywhere, c)
            return await asyncio.to_thread(rtt, n1.socket, n2.address)

    added = asyncio.run(scenario()) - base
    assert added >= 0.08, f"only {added * 1000:.1f} ms added: the host escaped the delay"


def test_bandwidth_and_loss_hold_when_the_hosts_drop_their_qdiscs_and_rules(c: Cluster) -> None:
    n1, n2, _ = c.hosts
    n2.spawn("sink", [HOST_PYTHON, "-c", SINK])
    n2.wait_port(9000)
    limit = Bandwidth(["n1"], 4_000_000)
    limit.apply(c)
    escape_everywhere(c)
    rate = 8_000_000 / send_measure(n1, n2.address, 1_000_000)
    limit.heal(c)
    assert rate < 4_000_000 * 1.2, f"{rate:.0f} bit/s: the host shook off its limit"
    inbox = Inbox(n2)
    tx = n1.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        loss = PacketLoss(["n2"], 0.5)
        loss.apply(c)
        escape_everywhere(c)
        got = 0
        for _ in range(8):
            for i in range(50):
                tx.sendto(str(i).encode(), (n2.address, inbox.port))
            got += len(inbox.drain(0.2))
        loss.heal(c)
        assert 100 <= got <= 300, f"{got} of 400 datagrams arrived at 50 % loss"
    finally:
        tx.close()
        inbox.close()


CHILD = r"""
import asyncio, sys, time
from infragym import ConfigError
from infragym.history import Clock, History
from infragym.nemesis import Bandwidth, Latency, Nemesis, Partition
from infragym.sandbox import Cluster
c = Cluster(2, net_admin=True).start()
Partition.isolate("n1", c.names, "cut").apply(c)
Bandwidth(["n2"], 1_000_000).apply(c)
async def slow():
    await Latency(["n1"], delay_s=0.1).apply_async(c)
    print(c.run_id, flush=True)
    time.sleep(60)
asyncio.run(slow())
"""


def test_cleanup_removes_what_a_killed_runs_faults_left_in_the_machine() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout is not None
        run_id = p.stdout.readline().strip()
        assert len(run_id) == 6, run_id
        left = leftovers(run_id)
        tables = left["nft tables"]
        assert any("guard" in t for t in tables) and any("fault_cut" in t for t in tables)
        assert any("link_proxy" in t for t in tables), tables
        assert any(n.endswith("-link-proxy") for n in left["netns"])
        assert any(n.startswith(f"ig{run_id}i") for n in left["links"]), "the ifb shaper"
    finally:
        p.kill()
        p.wait()
        p.stdout.close()  # type: ignore[union-attr]
    report = cleanup(owner_pid=p.pid)
    assert run_id in report.runs and len(report.tables) >= 3, report
    assert_no_leftovers(run_id)


def test_a_moved_vips_orphaned_connection_does_not_hold_up_teardown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ha-web after a fault sweep: a load balancer dies holding a connection at the VIP,
    which has moved to its peer. The orphaned socket (:func:`orphan_at_moved_vip`) held
    the namespace and its veth: teardown waited out its 10 s for the link. Now the link
    goes at once and nothing is left."""
    waits: list[bool] = []
    real_wait = _network.wait_links_gone

    def spy(names: Sequence[str], timeout: float) -> bool:
        gone = real_wait(names, timeout)
        waits.append(gone)
        return gone

    monkeypatch.setattr(_network, "wait_links_gone", spy)
    with Cluster(2, net_admin=True) as c:
        orphan_at_moved_vip(c)
    assert waits == [True], "teardown waited out its timeout for a link"
    assert_no_leftovers(c.run_id)
