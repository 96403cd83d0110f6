"""Start a command in a sandbox so that nothing inside shows how the platform made it.

A sandboxed process can read its PID namespace's pid 1 (``/proc/1/cmdline``, ``environ``,
``fd``) and its own ``mountinfo``. Were bubblewrap's reaper pid 1, its command line would
show every option: the run's directories (with the run id), the hidden task folders,
the privilege drop. So:

- bubblewrap reads its options from a memory file (``--args FD``), not its argv;
- it runs ``--as-pid-1``: no reaper of its own; setpriv drops privileges and executes a
  minimal init (Debian's python, ``/usr/bin/python3 -IS /dev/fd/N``), whose script
  arrives in another memory file and holds the command. Nothing else exists in the new
  PID namespace before that exec, so no sandboxed process ever sees the setpriv stage;
- the init closes the script's descriptor, starts the command as its child (same
  process group and session, so group signals and a terminal's job control reach it as
  before), reaps every orphan, and exits with the command's status (128 + N if a signal
  N ended it), which ends the namespace as bubblewrap's reaper did.

Files the platform puts in a view (``/etc/hosts``) are copied in from a memory file too
(``--ro-bind-data``), so ``mountinfo`` names no path of the machine for them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._seccomp import seccomp_fd

__all__ = ["INIT_PYTHON", "Launch", "data_fd"]

INIT_PYTHON = "/usr/bin/python3"

# kept free of anything that names the platform: it is what pid 1 runs
_INIT = """\
import os, signal, sys
argv = {argv!r}
os.close(int(sys.argv[0].rsplit("/", 1)[1]))
signal.signal(signal.SIGINT, signal.SIG_DFL)
child = os.fork()
if child == 0:
    for s in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(s, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        os.write(2, (argv[0] + ": " + (e.strerror or str(e)) + "\\n").encode(errors="replace"))
        os._exit(127 if e.errno == 2 else 126)
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        os._exit(1)
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
"""


def data_fd(name: str, data: bytes) -> int:
    """A memory file holding ``data``, positioned at its start (close-on-exec: pass it
    to the child explicitly)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass
class Launch:
    """The argv and descriptors of one bubblewrap start; close it once the child runs."""

    argv: list[str]
    fds: tuple[int, ...]
    _open: list[int] = field(default_factory=list)

    @classmethod
    def prepare(
        cls,
        bwrap: str,
        options: Sequence[str],
        privdrop: Sequence[str],
        argv: Sequence[str],
        data: Sequence[tuple[bytes, str]] = (),
    ) -> Launch:
        """``options`` are bubblewrap's (PID namespace and view); ``privdrop`` the
        command that drops privileges and executes what follows it (setpriv ... --);
        ``data`` are (content, path) files to bind read-only into the view."""
        opened: list[int] = []
        try:
            opened.append(seccomp_fd())
            opts = ["--seccomp", str(opened[0]), *options, "--as-pid-1"]
            for content, dest in data:
                opened.append(data_fd("data", content))
                opts += ["--perms", "0444", "--ro-bind-data", str(opened[-1]), dest]
            opened.append(data_fd("args", b"".join(a.encode() + b"\0" for a in opts)))
            args_fd = opened[-1]
            opened.append(data_fd("init", _INIT.format(argv=list(argv)).encode()))
            init = f"/dev/fd/{opened[-1]}"
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        full = [bwrap, "--args", str(args_fd), "--", *privdrop, INIT_PYTHON, "-IS", init]
        return cls(full, tuple(opened), opened)

    def close(self) -> None:
        while self._open:
            with contextlib.suppress(OSError):
                os.close(self._open.pop())
