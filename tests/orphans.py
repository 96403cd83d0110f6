"""A TCP connection orphaned at a virtual IP that moved: what ha-web's load balancers left
after a fault sweep, reduced to one connection (tests/test_net_admin.py and
benchmarks/bench_teardown.py)."""

from __future__ import annotations

import subprocess
import time

from infragym.sandbox import HOST_PYTHON, Cluster

HOLD = r"""
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8090))
s.listen()
conn, _ = s.accept()
print("ACCEPTED", flush=True)
time.sleep(3600)
"""


def orphan_at_moved_vip(c: Cluster) -> str:
    """On a started cluster whose first two hosts have ``net_admin``: n1 holds a virtual IP
    and a server on it, the client connects, the VIP moves to n2 (the client's neighbour
    entry follows, as keepalived's gratuitous ARP makes it) and n1 crashes. n1's kernel
    closes the connection for the dead server; the acknowledgement of its FIN goes to n2,
    so the orphan retransmits for a minute and more. Returns the VIP; raises unless n1
    holds that orphan (FIN-WAIT-1), so a caller never tests nothing."""
    n1, n2 = c.hosts[:2]
    vip = c.free_addresses()[0]
    n1.run(["ip", "addr", "add", f"{vip}/24", "dev", "eth0"], timeout=10)
    n1.spawn("hold", [HOST_PYTHON, "-c", HOLD])
    n1.wait_port(8090)
    client = c.client_socket()
    try:
        client.connect((vip, 8090))
        deadline = time.monotonic() + 10
        while "ACCEPTED" not in n1.log("hold"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"n1's server accepted nothing: {n1.log('hold')}")
            time.sleep(0.005)
        n1.run(["ip", "addr", "del", f"{vip}/24", "dev", "eth0"], timeout=10)
        n2.run(["ip", "addr", "add", f"{vip}/24", "dev", "eth0"], timeout=10)
        neigh = ["neigh", "replace", vip, "lladdr", n2.mac, "dev", "eth0"]
        subprocess.run(["ip", "-n", c.client_netns, *neigh], check=True)
        n1.kill_all()  # a crash
    finally:
        client.close()
    fin_wait = ["ss", "-N", n1.netns, "-tanH", "state", "fin-wait-1"]
    orphans = subprocess.run(fin_wait, capture_output=True, text=True, check=True).stdout
    if f"{vip}:8090" not in orphans:
        raise RuntimeError(f"n1 left no orphaned connection at {vip}: {orphans!r}")
    return vip
