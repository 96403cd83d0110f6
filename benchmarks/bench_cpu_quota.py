"""Per-host CPU quotas: a CPU-bound HTTP server on 1, 2 and 4 hosts of a quota, against
the same server on one host without a quota, measured in one run.

    .venv/bin/python benchmarks/bench_cpu_quota.py [--quota 0.25] [--seconds 8] [--rounds 2]

The server (Python's single-threaded ``http.server``) burns a fixed amount of CPU per
request (PBKDF2 rounds). Clients in the cluster's client namespace keep ``--inflight``
requests outstanding per host and spread them round robin over the hosts; each host's
cgroup reports the CPU seconds its processes used. Printed per configuration: requests per
second, its ratio to the unlimited server, the expected ratio (hosts x quota over the
cores the unlimited server used: at most one, it is single-threaded, and less when the
machine is busy) and the most CPU any one host used, in cores. Quotas are enforced per
host when the ratio follows the expected one and no quota'd host uses more than its
quota; the last column says so.
Configurations are interleaved over ``--rounds`` so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

from infragym.sandbox import Cluster, Limits

PORT = 8080
SERVER = r"""
import hashlib, http.server, sys
ROUNDS = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", ROUNDS).hex().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def request(c: Cluster, address: str) -> bool:
    s = c.client_socket()
    try:
        s.settimeout(10.0)
        s.connect((address, PORT))
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data.startswith(b"HTTP/1.0 200")
    except OSError:
        return False
    finally:
        s.close()


def measure(c: Cluster, seconds: float, inflight: int) -> tuple[float, dict[str, float]]:
    """Requests per second over ``seconds`` of closed-loop load spread round robin over
    the hosts, and the CPU cores each host used meanwhile."""
    addresses = [h.address for h in c.hosts]
    lock = threading.Lock()
    counter = {"next": 0, "ok": 0}
    deadline = 0.0

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                address = addresses[counter["next"] % len(addresses)]
                counter["next"] += 1
            if request(c, address):
                with lock:
                    counter["ok"] += 1

    for h in c.hosts:  # warm up: every server answers
        for _ in range(3):
            request(c, h.address)
    cpu0 = c.cpu_usage_s()
    t0 = time.monotonic()
    deadline = t0 + seconds
    threads = [threading.Thread(target=worker) for _ in range(inflight * len(addresses))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    cpu1 = c.cpu_usage_s()
    return counter["ok"] / wall, {n: (cpu1[n] - cpu0[n]) / wall for n in cpu1}


def start(n: int, quota: float, rounds: int) -> Cluster:
    limits = Limits(cpu=quota) if quota else Limits()
    c = Cluster(n, limits=limits).start()
    try:
        for h in c.hosts:
            h.spawn("server", ["/usr/bin/python3", "-c", SERVER, str(rounds)])
        for h in c.hosts:
            h.wait_port(PORT, timeout=10.0)
    except BaseException:
        c.close()
        raise
    return c


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quota", type=float, default=0.25, help="cores per host")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--inflight", type=int, default=2, help="requests outstanding per host")
    ap.add_argument("--work", type=int, default=80000, help="PBKDF2 rounds per request")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    configs = [(1, 0.0), (1, args.quota), (2, args.quota), (4, args.quota)]
    rps: dict[tuple[int, float], list[float]] = {k: [] for k in configs}
    cores: dict[tuple[int, float], list[float]] = {k: [] for k in configs}
    for _ in range(args.rounds):
        for n, q in configs:
            c = start(n, q, args.work)
            try:
                r, used = measure(c, args.seconds, args.inflight)
            finally:
                c.close()
            rps[(n, q)].append(r)
            cores[(n, q)].append(max(used.values()))
    base = statistics.median(rps[(1, 0.0)])
    base_cores = statistics.median(cores[(1, 0.0)])
    print(
        f"{'hosts':>5} {'quota':>6} {'req/s':>8} {'ratio':>6} {'expected':>8} "
        f"{'max cores/host':>15} {'enforced':>8}"
    )
    worst = 0.0
    for n, q in configs:
        r = statistics.median(rps[(n, q)])
        used = max(cores[(n, q)])
        expected = min(n * q, base_cores) / base_cores if q else 1.0
        enforced = "-" if not q else ("yes" if used <= q * 1.1 else "NO")
        if q:
            worst = max(worst, abs(r / base - expected) / expected)
        quota = f"{q:.2f}" if q else "none"
        print(
            f"{n:>5} {quota:>6} {r:>8.1f} {r / base:>6.2f} {expected:>8.2f} "
            f"{used:>15.3f} {enforced:>8}"
        )
    print(f"largest deviation of a quota'd ratio from hosts x quota: {worst:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
