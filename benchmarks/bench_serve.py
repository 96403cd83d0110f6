"""A step over `infragym serve` (OpenEnv's own client, WebSocket /ws) against the same step
through the local Env, measured in one run.

    .venv/bin/python benchmarks/bench_serve.py [--steps 100]

Both play ``bash("true")`` in an episode of a tiny task with no dev hosts; the steps are
interleaved so machine noise hits both alike; figures are medians. Needs the openenv extra.
Target: the server adds under 5 ms to a step.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from openenv.core import GenericEnvClient

from infragym.env import Env, ToolCall
from infragym.tasks import find_task

TASK_TOML = """
name = "bench"
summary = "A tiny task for benchmarks."
[topology]
hosts = 1
dev_hosts = 0
[limits]
max_steps = 100000
"""


def tiny_task(root: Path) -> Path:
    d = root / "bench"
    (d / "workspace").mkdir(parents=True)
    (d / "solutions" / "x").mkdir(parents=True)
    (d / "task.toml").write_text(TASK_TOML)
    (d / "instructions.md").write_text("Nothing to do.\n")
    (d / "workspace" / "README").write_text("starter\n")
    (d / "grader.py").write_text("async def grade(ctx):\n    raise NotImplementedError\n")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    steps = ap.parse_args().steps
    with tempfile.TemporaryDirectory(prefix="infragym-bench-") as tmp:
        task = tiny_task(Path(tmp))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "infragym.cli.main", "serve", "--port", str(port),
               "--tasks", str(task), "--max-sessions", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(url, proc)
            remote, local = run(url, task, steps)
        finally:
            proc.terminate()
            proc.wait(60)
    med = statistics.median
    print(f"{'step bash(true)':<24} {'median ms':>10}")
    print(f"{'local Env.step':<24} {med(local):>10.2f}")
    print(f"{'over infragym serve':<24} {med(remote):>10.2f}")
    added = med(remote) - med(local)
    print(f"added by the server: {added:.2f} ms (target < 5 ms): {'ok' if added < 5 else 'MISSED'}")


def run(url: str, task: Path, steps: int) -> tuple[list[float], list[float]]:
    loop = asyncio.new_event_loop()
    env = Env(find_task(str(task)))
    call = ToolCall("bash", {"command": "true"})
    action = {"name": "bash", "arguments": {"command": "true"}}
    remote: list[float] = []
    local: list[float] = []
    try:
        loop.run_until_complete(env.reset(seed=1))
        with GenericEnvClient(base_url=url).sync() as client:
            client.reset(seed=1)
            for _ in range(steps):
                t0 = time.perf_counter()
                r = client.step(action)
                remote.append((time.perf_counter() - t0) * 1000)
                assert "[exit code 0]" in r.observation["content"], r
                t0 = time.perf_counter()
                loop.run_until_complete(env.step(call))
                local.append((time.perf_counter() - t0) * 1000)
    finally:
        loop.run_until_complete(env.close())
        loop.close()
    return remote, local


if __name__ == "__main__":
    main()
