"""Shared fixtures. Tests that build clusters need root; they are skipped otherwise."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infragym.sandbox import HOST_PYTHON, Cluster, _cgroup, _state
from infragym.sandbox._identity import run_uid
from infragym.sandbox._switch import run_tables
from infragym.sandbox._sys import list_links, list_netns, mounts_under

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (namespaces, cgroups, mounts)")

# A tiny HTTP server used as "the service" on hosts: GET / answers the host name.
HTTP_SERVER = r"""
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("INFRAGYM_HOST", "?").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


# A sink on port 9000: reads until EOF, then answers how many bytes it got.
SINK = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen()
while True:
    c, _ = s.accept(); n = 0
    while (b := c.recv(65536)):
        n += len(b)
    c.sendall(str(n).encode()); c.close()
"""

# An echo server on port 9200.
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


def send_measure(host, addr: str, nbytes: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds for ``host`` to push ``nbytes`` to the SINK at ``addr`` and have it confirm
    receipt of all of them."""
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


def rtt(open_socket: Callable[[], socket.socket], addr: str, n: int = 7) -> float:
    """Median round trip of a small request to the ECHO at ``addr``, on one connection
    made by ``open_socket`` (``host.socket``, ``cluster.client_socket``), in seconds."""
    s = open_socket()
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


def start_http(host, port: int = 8080):  # type: ignore[no-untyped-def]
    p = host.spawn("http", [HOST_PYTHON, "-c", HTTP_SERVER, "0.0.0.0", str(port)])
    host.wait_port(port)
    return p


def leftovers(run_id: str) -> dict[str, list[str]]:
    """Every kernel object or directory of ``run_id`` that still exists."""
    return {
        "netns": [n for n in list_netns() if _state.run_id_of_netns(n) == run_id],
        "links": [n for n in list_links() if _state.run_id_of_link(n) == run_id],
        "nft tables": run_tables(run_id),
        "cgroups": [str(p) for p in _cgroup.run_cgroups(run_id)],
        "mounts": mounts_under(str(_state.DATA_ROOT / run_id)),
        "dirs": [str(p) for p in [_state.DATA_ROOT / run_id] if p.exists()],
        "record": [str(p) for p in [_state.STATE_DIR / f"{run_id}.json"] if p.exists()],
        "processes of its uid": [str(p) for p in pids_of_uid(run_uid(run_id))],
    }


def pids_of_uid(uid: int) -> list[int]:
    """Every live process of the machine whose real uid is ``uid``. Zombies are left out:
    a killed run's are the machine's init's to reap (this one's reaps them late), and
    they hold nothing."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{pid}/status").read_text() if pid.isdigit() else ""
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        zombie = fields.get("State", "").strip().startswith("Z")
        if "Uid" in fields and int(fields["Uid"].split()[0]) == uid and not zombie:
            out.append(int(pid))
    return out


def assert_no_leftovers(run_id: str) -> None:
    left = {k: v for k, v in leftovers(run_id).items() if v}
    assert not left, f"run {run_id} left behind: {left}"


@pytest.fixture
def cluster3() -> Iterator[Cluster]:
    if not ROOT:
        pytest.skip("needs root")
    with Cluster(3) as c:
        yield c
    assert_no_leftovers(c.run_id)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


_STOP_CODES = {128 + signal.SIGTERM, 128 + signal.SIGHUP, 128 + signal.SIGINT}


def pytest_exception_interact(node: pytest.Item, call: pytest.CallInfo[None],
                              report: pytest.TestReport) -> None:
    """infragym turns SIGTERM into ``SystemExit(143)`` so its teardown runs; pytest would
    record that as one failed test and go on. A signal means stop: end the session."""
    exc = call.excinfo
    if exc is not None and isinstance(exc.value, SystemExit) and exc.value.code in _STOP_CODES:
        pytest.exit(f"stopped by signal {int(exc.value.code) - 128}",
                    returncode=int(exc.value.code))


@pytest.fixture
def no_runs_left() -> Iterator[None]:
    """After the test, this process holds no run record: every episode, workstation and
    cluster it started was removed (use with ``pytest.mark.usefixtures``)."""
    yield
    left = [r.run_id for r in _state.all_records() if r.owner_pid == os.getpid()]
    assert not left, {r: leftovers(r) for r in left}


def assert_no_namespaces_left(before: set[str]) -> None:
    """No network namespace came since ``before`` but other processes' live runs (this
    machine may be shared): none of this process's runs, none of no run at all."""
    others = {r.run_id for r in _state.all_records() if r.owner_pid != os.getpid()}
    new = set(list_netns()) - before
    assert all(ns.split("-")[1] in others for ns in new), f"episodes left {sorted(new)}"


@contextlib.contextmanager
def recording_clusters() -> Iterator[list[str]]:
    """The run ids of every cluster a grader builds with ``ctx.cluster()`` meanwhile (its
    own arguments kept: the variant's hosts unless it names others)."""
    from infragym.grading import GradeContext

    run_ids: list[str] = []
    original = GradeContext.cluster

    def spy(self: GradeContext, hosts: Any = None, **kwargs: Any) -> Cluster:
        c = original(self, hosts, **kwargs)
        run_ids.append(c.run_id)
        return c

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GradeContext, "cluster", spy)
        yield run_ids
