"""The sandbox's reading of ``/proc/<pid>/stat``: one parser serves the start time
(admission, cleanup), the state (a zombie holds nothing) and the parent (fleet-drift's
sampler), so a command name with spaces or parentheses cannot shift the fields."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import HTTP_SERVER, start_http

from infragym.nemesis import descends_from, listener_pids, parent_pid
from infragym.sandbox import HOST_PYTHON, Cluster
from infragym.sandbox.lowlevel import pid_running, pid_start_time, pid_state, proc_stat


def test_a_child_is_running_then_a_zombie_then_gone() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        odd = Path(tmp) / "a (b) c"  # the command name ends at the last ')'
        shutil.copy("/bin/sleep", odd)
        child = subprocess.Popen([str(odd), "30"])
        try:
            fields = proc_stat(child.pid)
            assert fields is not None and fields[0] in ("R", "S")
            assert parent_pid(child.pid) == os.getpid()
            assert pid_running(child.pid) and pid_start_time(child.pid) is not None
            os.kill(child.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while pid_state(child.pid) != "Z" and time.monotonic() < deadline:
                time.sleep(0.01)
            assert pid_state(child.pid) == "Z"  # killed, not reaped yet
            assert not pid_running(child.pid)
            assert parent_pid(child.pid) == os.getpid()
        finally:
            child.kill()
            child.wait()
    assert proc_stat(child.pid) is None and pid_state(child.pid) is None
    assert not pid_running(child.pid) and parent_pid(child.pid) == 0
    assert pid_start_time(child.pid) is None


def test_the_listener_of_a_port_is_found_and_told_from_a_stand_in(cluster3: Cluster) -> None:
    """What listens on a port is read from the kernel (socket inodes in every process's
    descriptors): the service's own process, and not an operator's process that took the
    port over; a port nothing listens on has no owner."""
    host = cluster3.host("n1")
    svc = start_http(host, 8080)
    owners = listener_pids(host, 8080)
    assert owners and all(descends_from(o, svc.pid) for o in owners), owners
    assert listener_pids(host, 9090) == set()
    svc.stop()
    stand_in = host.spawn("bg1", [HOST_PYTHON, "-c", HTTP_SERVER, "0.0.0.0", "8080"], service=False)
    host.wait_port(8080)
    owners = listener_pids(host, 8080)
    assert owners and all(descends_from(o, stand_in.pid) for o in owners)
    assert not any(descends_from(o, svc.pid) for o in owners)
    assert not descends_from(os.getpid(), stand_in.pid) and descends_from(os.getpid(), os.getpid())
