"""A sandboxed process on a pseudo-terminal of its own, for a person at a terminal.

:meth:`Workstation.spawn_interactive` starts it exactly as ``exec`` starts a command (same
bubblewrap view, user, cgroups, network namespace and seccomp filter); this module holds
what differs: the terminal. The child side of a new pty becomes the process's stdin,
stdout, stderr and controlling terminal, in a session of its own, so a shell on it has job
control and the terminal's Ctrl-C reaches the command in its foreground, not the platform.
The caller relays the master side (:attr:`PtyProcess.master_fd`) and closes the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Callable
from pathlib import Path

__all__ = ["PtyProcess", "make_controlling_terminal", "open_pty"]


def open_pty() -> tuple[int, int]:
    """A new pseudo-terminal: (master, child side), neither inherited across exec."""
    master, child = os.openpty()
    os.set_inheritable(master, False)
    os.set_inheritable(child, False)
    return master, child


def make_controlling_terminal() -> None:
    """In a forked child that has called ``setsid``: its stdin (the pty) becomes the
    session's controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    """A process on a pty: ``master_fd`` to relay, ``resize``, ``close`` to end it all.

    ``proc`` is bubblewrap's monitor, whose child is the init of the process's own PID
    namespace: killing that init kills every process of the namespace.
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], master_fd: int, on_close: Callable[[], None]
    ) -> None:
        self.proc = proc
        self.master_fd = master_fd
        self._on_close = on_close
        self._closed = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's size (the process gets SIGWINCH)."""
        if not self._closed:
            winsize = struct.pack("HHHH", rows, cols, 0, 0)
            fcntl.ioctl(self.master_fd, termios.TIOCSWINSZ, winsize)

    def close(self, timeout: float = 10.0) -> int | None:
        """Kill the process with everything it started, wait for it, close the master.

        Returns the exit code, or None when it had to be killed. Idempotent.
        """
        if self._closed:
            return self.proc.returncode
        self._closed = True
        try:
            code = self.proc.poll()
            if code is None:
                self._kill(timeout)
            return code
        finally:
            os.close(self.master_fd)
            self._on_close()

    def _kill(self, timeout: float) -> None:
        pid = self.proc.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
            inits = [int(p) for p in text.split()]
        except (OSError, ValueError):
            inits = []
        for child in inits:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        try:
            self.proc.wait(timeout / 2 if inits else 0)
            return
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        self.proc.wait(timeout)

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
