"""Start a command in a sandbox so that nothing inside shows how the platform made it.

A sandboxed process can read its PID namespace's pid 1 (``/proc/1/cmdline``, ``environ``,
``fd``) and its own ``mountinfo``. Were bubblewrap's reaper pid 1, its command line would
show every option: the run's directories (with the run id), the hidden task folders,
the privilege drop. So:

- bubblewrap reads its options from a memory file (``--args FD``), not its argv;
- it runs ``--as-pid-1``: no reaper of its own; setpriv drops privileges and executes a
  minimal init, ``/bin/sh /run/init``: a two-line script bubblewrap copies into the
  view's ``/run`` (``--file``) that runs the command through ``env`` (never a shell
  builtin of the same name) and exits with its status. Nothing else exists in the new
  PID namespace before that exec, so no sandboxed process ever sees the setpriv stage;
- the shell runs the command as its child in the foreground (same process group and
  session, so group signals and a terminal's job control reach it as before), reaps
  every orphan while it waits, and exits with the command's status (128 + N if a signal
  N ended it), which ends the namespace as bubblewrap's reaper did. As pid 1 it ignores
  every signal sent to it from inside; it costs a millisecond and a megabyte.

Files the platform puts in a view once (``/etc/passwd``, ``/etc/group``) are copied in
from a memory file too (``--ro-bind-data``), so ``mountinfo`` names no path of the
machine for them. Files it changes while the host runs (``/etc/hosts``, which a growth
appends to, and the clock offset) are read-only binds of the host's platform disk, a
tmpfs of its own: ``mountinfo`` shows them as ``/hosts`` and ``/faketime.rc`` of it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._seccomp import seccomp_fd

__all__ = ["INIT", "Launch", "data_fd", "init_script"]

INIT_SHELL = "/bin/sh"
INIT = "/run/init"  # where the script lies in the view (a tmpfs /run must be mounted)


def init_script(argv: Sequence[str]) -> bytes:
    """The init's script: ``argv`` in the foreground, then exit with its status. Not the
    last command, so the shell forks for it rather than replacing itself."""
    words = " ".join(shlex.quote(a) for a in argv)
    return f"/usr/bin/env -- {words}\nexit $?\n".encode(errors="surrogateescape")


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
            opened.append(data_fd("init", init_script(argv)))
            opts += ["--perms", "0444", "--file", str(opened[-1]), INIT]
            opened.append(data_fd("args", b"".join(_arg(a) + b"\0" for a in opts)))
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        full = [bwrap, "--args", str(opened[-1]), "--", *privdrop, INIT_SHELL, INIT]
        return cls(full, tuple(opened), opened)

    def close(self) -> None:
        while self._open:
            with contextlib.suppress(OSError):
                os.close(self._open.pop())


def _arg(a: str) -> bytes:
    return a.encode(errors="surrogateescape")
