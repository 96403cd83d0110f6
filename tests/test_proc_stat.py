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

from infragym.nemesis import parent_pid
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
