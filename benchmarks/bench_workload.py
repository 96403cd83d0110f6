"""How fast can the open-loop workload drive one core while recording every operation?

Run: ``.venv/bin/python benchmarks/bench_workload.py [--seconds 3] [--repeats 3]``

A trivial keep-alive HTTP server runs in a child process pinned to CPU 1; this process
(the workload) is pinned to CPU 0. For each target rate the full stack runs for a few
seconds: Runner + KVGenerator (half reads, half writes) + KVClient + the HTTP transport
(aiohttp, the default, and the lean asyncio one), recording into a History. A rate is
*sustained* when every operation was recorded with a definite ``ok`` (none overloaded,
timed out or unfinished), the achieved ok-rate is within 2 % of the target and at most 1 %
of operations started more than 10 ms after their intended time. Each rate is measured
``--repeats`` times and the medians are printed.

The peer, measured in the same run against the same server from the same core, is ``wrk``
if it is installed, else a raw-asyncio closed loop over keep-alive connections that
records nothing: the most a Python client can push here. The ratio workload / peer is
what to compare across machines; the absolute numbers are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

TARGET_RATE = 2000
RATES = (1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000)
TRANSPORTS = ("aiohttp", "lean")
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


# -- the server (child process) --------------------------------------------------------


class _Echo(asyncio.Protocol):
    """Answers every HTTP/1.1 request (pipelined or not) with 200 "ok"."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", self.buf[: end + 2])
            if m:
                length = int(m.group(1))
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            self.transport.write(RESPONSE)


def serve(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Echo, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        server.close()

    asyncio.run(main())


# -- the workload ----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    rate: int
    ok_rate: float
    lag_frac: float
    p99_ms: float
    recorded: bool
    sustained: bool


def measure(url: str, rate: int, seconds: float, transport: str = "aiohttp") -> Step:
    from infragym.history import Clock, History
    from infragym.workload import KVGenerator, Mix, Runner, Stream

    async def main() -> Step:
        history, clock = History(), Clock()
        gen = KVGenerator([url], seed=rate, mix=Mix(read=1, write=1), keys=64)
        async with Runner(history, clock, transport=transport) as runner:  # type: ignore[arg-type]
            summary = await runner.run(Stream(gen, rate=rate, duration=seconds, timeout=2.0))
        ops = history.operations()
        start = min(op.intended for op in ops)
        end = max(op.complete for op in ops if op.ok)
        lags = sum(1 for op in ops if op.invoke - op.intended > 0.010)
        lat = sorted(op.latency for op in ops)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000
        ok_rate = summary.ok / max(end - start, seconds)
        recorded = summary.unfinished == 0 and summary.ok == summary.launched == len(ops)
        sustained = recorded and ok_rate >= 0.98 * rate and lags <= 0.01 * len(ops)
        return Step(rate, ok_rate, lags / len(ops), p99, recorded, sustained)

    return asyncio.run(main())


def peer_asyncio(port: int, seconds: float, conns: int = 32) -> float:
    """Closed loop, keep-alive, no recording: requests per second."""

    async def main() -> float:
        count = 0
        deadline = time.monotonic() + seconds
        request = b"GET /kv/k1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

        async def loop() -> None:
            nonlocal count
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while time.monotonic() < deadline:
                    writer.write(request)
                    await reader.readexactly(len(RESPONSE))
                    count += 1
            finally:
                writer.close()
                await writer.wait_closed()

        t0 = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(conns)))
        return count / (time.monotonic() - t0)

    return asyncio.run(main())


def peer_wrk(wrk: str, port: int, seconds: float, cpu: int | None) -> float:
    cmd = [wrk, "-t1", "-c32", f"-d{max(1, round(seconds))}s", f"http://127.0.0.1:{port}/kv/k1"]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    ).stdout
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.cpu)
        return

    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    server_cmd = [sys.executable, __file__, "--serve"]
    if server_cpu is not None:
        server_cmd += ["--cpu", str(server_cpu)]
    server = subprocess.Popen(server_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        url = f"http://127.0.0.1:{port}"
        pinning = (
            f"workload on CPU {client_cpu}, server on CPU {server_cpu}"
            if client_cpu is not None
            else "one CPU only: workload and server share it (not pinned)"
        )
        print(f"bench_workload: {pinning}; {args.seconds:g} s per step, {args.repeats} repeats")
        measure(url, 500, 0.5)  # warm-up: imports, first connections

        results: dict[str, dict[int, list[Step]]] = {t: {} for t in TRANSPORTS}
        best: dict[str, list[int]] = {t: [] for t in TRANSPORTS}
        wrk = shutil.which("wrk")
        peers: list[float] = []
        for rep in range(args.repeats):
            for transport in TRANSPORTS:
                top, misses = 0, 0
                for rate in RATES:  # up until two rates in a row are not sustained
                    step = measure(url, rate, args.seconds, transport)
                    results[transport].setdefault(rate, []).append(step)
                    misses = 0 if step.sustained else misses + 1
                    top = rate if step.sustained else top
                    if misses == 2:
                        break
                best[transport].append(top)
            if wrk:
                peers.append(peer_wrk(wrk, port, args.seconds, client_cpu))
            else:
                peers.append(peer_asyncio(port, args.seconds))
            tops = ", ".join(f"{t} {best[t][-1]}" for t in TRANSPORTS)
            print(f"  repeat {rep + 1}: max sustained ops/s: {tops}; peer {peers[-1]:.0f} req/s")
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=10)
        if server.stdout:
            server.stdout.close()

    peer = statistics.median(peers)
    peer_name = "wrk -t1 -c32" if wrk else "raw asyncio closed loop, 32 keep-alive conns"
    for transport in TRANSPORTS:
        print(f"\ntransport={transport}")
        print(f"{'target/s':>9} {'ok/s':>9} {'lag>10ms':>9} {'p99 ms':>8} {'recorded':>9} {'n':>2}")
        for rate, steps in results[transport].items():
            print(
                f"{rate:>9} {statistics.median(s.ok_rate for s in steps):>9.0f} "
                f"{statistics.median(s.lag_frac for s in steps):>9.2%} "
                f"{statistics.median(s.p99_ms for s in steps):>8.2f} "
                f"{'all' if all(s.recorded for s in steps) else 'NO':>9} {len(steps):>2}"
            )
    print(f"\npeer ({peer_name}, records nothing), median: {peer:.0f} req/s")
    for transport in TRANSPORTS:
        sustained = statistics.median(best[transport])
        verdict = "MET" if sustained >= TARGET_RATE else "NOT MET"
        print(
            f"workload transport={transport:<8} max sustained (median) {sustained:>6.0f} ops/s, "
            f"ratio to peer {sustained / peer:.2f}; target >= {TARGET_RATE} ops/s on one core "
            f"with every operation recorded: {verdict}"
        )


if __name__ == "__main__":
    main()
