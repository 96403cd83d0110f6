"""A step over `infragym serve` (OpenEnv's own client, WebSocket /ws) against the same step
through the local Env, measured in one run; then how many idle sessions, each holding an
episode, one server holds, and what they cost.

    .venv-openenv/bin/python benchmarks/bench_serve.py [--steps 100] [--idle 16,32,64]

All play ``bash("true")`` in an episode of a tiny task with no dev hosts: a step over
``/ws``, the same call as an MCP ``tools/call`` (OpenEnv's ``MCPToolClient``, ``POST
/mcp``) and a local ``Env.step``, interleaved so machine noise hits them alike; figures
are medians. Needs the openenv extra.
Target: the server adds under 5 ms to a step.

Idle sessions: at each level, sessions are opened and reset (an episode each: a workstation
sandbox) until that many are open; then the server's memory (its process tree's RSS), the
machine's available memory, the median reset and a busy session's step round trip (while
the others idle) are printed. A level that cannot be reached stops the run and says why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openenv.core import GenericEnvClient
from openenv.core.mcp_client import MCPToolClient

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
    ap.add_argument("--idle", default="16,32,64", help="idle-session levels ('' to skip)")
    args = ap.parse_args()
    levels = [int(x) for x in args.idle.split(",") if x]
    with tempfile.TemporaryDirectory(prefix="infragym-bench-") as tmp:
        task = tiny_task(Path(tmp))
        with serving(task, 2) as url:
            remote, mcp, local = run(url, task, args.steps)
        med = statistics.median
        print(f"{'step bash(true)':<24} {'median ms':>10}")
        print(f"{'local Env.step':<24} {med(local):>10.2f}")
        print(f"{'over infragym serve':<24} {med(remote):>10.2f}")
        print(f"{'MCP tools/call':<24} {med(mcp):>10.2f}")
        for name, times in (("server (/ws step)", remote), ("server (MCP call)", mcp)):
            added = med(times) - med(local)
            print(
                f"added by the {name}: {added:.2f} ms ({med(times) / med(local):.2f}x) "
                f"(target < 5 ms): {'ok' if added < 5 else 'MISSED'}"
            )
        if levels:
            with serving(task, max(levels) + 1) as url:
                idle_sessions(url, levels, args.steps)


@contextlib.contextmanager
def serving(task: Path, max_sessions: int) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "infragym.cli.main",
        "serve",
        "--port",
        str(port),
        "--tasks",
        str(task),
        "--max-sessions",
        str(max_sessions),
        "--session-timeout",
        "3600",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    global SERVER_PID
    SERVER_PID = proc.pid
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(120)


SERVER_PID = 0


def tree_rss_mib(pid: int) -> float:
    """The resident memory of ``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total_kib, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            pass
    return total_kib / 1024


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def idle_sessions(url: str, levels: list[int], steps: int) -> None:
    med = statistics.median
    action = {"name": "bash", "arguments": {"command": "true"}}
    clients: list[Any] = []
    resets: list[float] = []
    base_rss, base_avail = tree_rss_mib(SERVER_PID), mem_available_mib()
    print(f"\nidle sessions, an episode each (server alone: {base_rss:.0f} MiB)")
    print(
        f"{'sessions':>8} {'server MiB':>11} {'MiB/session':>12} {'machine -MiB':>13} "
        f"{'reset ms':>9} {'step ms':>8}"
    )
    try:
        for level in levels:
            try:
                while len(clients) < level:
                    c = GenericEnvClient(base_url=url, message_timeout_s=300).sync()
                    c.connect()
                    clients.append(c)
                    t0 = time.perf_counter()
                    c.reset(seed=len(clients))
                    resets.append((time.perf_counter() - t0) * 1000)
            except Exception as exc:
                print(f"stopped at {len(clients)} sessions: {exc}")
                return
            rtt = []
            for _ in range(steps):
                t0 = time.perf_counter()
                clients[0].step(action)
                rtt.append((time.perf_counter() - t0) * 1000)
            rss = tree_rss_mib(SERVER_PID)
            print(
                f"{level:>8} {rss:>11.0f} {(rss - base_rss) / level:>12.1f} "
                f"{base_avail - mem_available_mib():>13.0f} {med(resets):>9.0f} "
                f"{med(rtt):>8.2f}"
            )
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                c.close()


def in_loop(loop: asyncio.AbstractEventLoop, fn: Any) -> Any:
    """An OpenEnv client call on ``loop`` (outside a loop, the client runs it in its own)."""

    async def go() -> Any:
        return await fn()

    return loop.run_until_complete(go())


def run(url: str, task: Path, steps: int) -> tuple[list[float], list[float], list[float]]:
    """Round trips (ms) of the same step over /ws, as an MCP tools/call, and locally."""
    loop = asyncio.new_event_loop()
    env = Env(find_task(str(task)))
    call = ToolCall("bash", {"command": "true"})
    action = {"name": "bash", "arguments": {"command": "true"}}
    remote: list[float] = []
    mcp: list[float] = []
    local: list[float] = []
    tools = MCPToolClient(base_url=url)
    try:
        loop.run_until_complete(env.reset(seed=1))
        in_loop(loop, lambda: tools.reset(seed=2))
        with GenericEnvClient(base_url=url).sync() as client:
            client.reset(seed=1)
            for _ in range(steps):
                t0 = time.perf_counter()
                r = client.step(action)
                remote.append((time.perf_counter() - t0) * 1000)
                assert "[exit code 0]" in r.observation["content"], r
                t0 = time.perf_counter()
                out = loop.run_until_complete(tools.call_tool("bash", command="true"))
                mcp.append((time.perf_counter() - t0) * 1000)
                assert "[exit code 0]" in out["content"], out
                t0 = time.perf_counter()
                loop.run_until_complete(env.step(call))
                local.append((time.perf_counter() - t0) * 1000)
    finally:
        in_loop(loop, tools.close)
        loop.run_until_complete(env.close())
        loop.close()
    return remote, mcp, local


if __name__ == "__main__":
    main()
