"""`infragym play` on a real terminal (tmux): a shell in the agent's sandbox, as people use it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_no_leftovers, needs_root

from infragym.sandbox import _state

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (setup.sh installs it)"),
]


class Tmux:
    """One tmux server of our own (its socket in the test's directory), one session, one pane."""

    def __init__(self, socket: Path) -> None:
        self.base = ["tmux", "-S", str(socket), "-f", "/dev/null"]

    def __call__(self, *args: str) -> str:
        r = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10,
                           check=True)
        return r.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-J", "-S", "-1000", "-t", "play")

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear in {timeout:g} s; the pane:\n"
                                     f"{screen}")
            time.sleep(0.1)

    def pane(self, fmt: str) -> str:
        return self("display-message", "-p", "-t", "play", fmt).strip()

    def send(self, *keys: str) -> None:
        self("send-keys", "-t", "play", *keys)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_play_on_a_terminal_is_a_shell_with_job_control_and_dev_hosts(tmp_path: Path) -> None:
    tmux = Tmux(tmp_path / "tmux.sock")
    err, pid_file, rc_file = (tmp_path / n for n in ("stderr", "pid", "rc"))
    play = shlex.join([sys.executable, "-m", "infragym.cli.main", "play", "kv-replicated",
                       "--out", str(tmp_path)])
    pythonpath = os.environ.get("PYTHONPATH", "")
    # the shell of the pane runs play in the foreground (its own pid noted) and keeps its code
    script = (f"echo $$ > {pid_file}; PYTHONPATH={shlex.quote(pythonpath)} exec {play} "
              f"2>{err}")
    cmd = f"sh -c {shlex.quote(script)}; echo $? > {rc_file}"
    pid = 0
    try:
        tmux("new-session", "-d", "-s", "play", "-x", "150", "-y", "50", cmd,
             ";", "set-option", "-g", "remain-on-exit", "on")
        tmux.wait_for("agent:/workspace$", 40)
        pid = int(pid_file.read_text())
        runs = [r.run_id for r in _state.all_records() if r.owner_pid == pid]
        assert len(runs) == 2, runs  # the workstation and the dev hosts

        tmux.send("echo out-$((6*7)) $(id -un)", "Enter")
        tmux.wait_for("out-42 sandbox", 10)  # as the agent's user

        tmux.send("echo sleeping-$((40+2)); sleep 100", "Enter")
        tmux.wait_for("sleeping-42", 10)
        time.sleep(0.3)
        tmux.send("C-c")  # interrupts the sleep, not the session
        tmux.send("echo alive-$((3+4))", "Enter")
        tmux.wait_for("alive-7", 10)
        assert tmux.pane("#{pane_dead}") == "0"

        tmux.send(":host n2 'echo port=$PORT node=$NODE_ID'", "Enter")
        tmux.wait_for("port=8080 node=n2", 20)  # the contract's environment on a dev host

        tmux.send("exit", "Enter")
        deadline = time.monotonic() + 30
        while not (rc_file.exists() and rc_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rc_file.read_text().strip() == "0", tmux.screen() + err.read_text()
        assert "quitting without grading" in tmux.screen()
    finally:
        subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10,
                       check=False)  # a play still running gets SIGHUP and tears down
        deadline = time.monotonic() + 30
        while pid and not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert pid and _gone(pid)
    for run_id in runs:
        assert_no_leftovers(run_id)
