"""An `infragym serve` in a subprocess for the tests that play episodes over the network
(tests/test_serve.py with OpenEnv's client, tests/test_remote.py with infragym.remote)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import assert_no_leftovers

from infragym.sandbox import _state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(
    tmp_path: Path, *tasks: str, max_sessions: int = 2, timeout: float = 120
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`infragym serve` in a subprocess; yields it and its base URL once /health answers."""
    port = free_port()
    log = (tmp_path / f"serve-{port}.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "infragym.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-sessions",
        str(max_sessions),
        "--session-timeout",
        str(timeout),
        "--tasks",
        *tasks,
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /health in 60 s"
            time.sleep(0.2)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def runs_of(pid: int) -> list[str]:
    """The sandbox runs (workstation, dev hosts) the process ``pid`` owns now."""
    return [r.run_id for r in _state.all_records() if r.owner_pid == pid]


def wait_gone(pid: int, run_ids: list[str], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while set(runs_of(pid)) & set(run_ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for run_id in run_ids:
        assert_no_leftovers(run_id)
