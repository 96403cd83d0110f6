"""Commands on dev hosts, for the ``host_bash`` tool.

A foreground command writes its output to a file on the host's own ``/tmp`` (a small sized
tmpfs) instead of a pipe back to the platform: ``Host.run`` would hold all of it in the
platform's memory, so a command printing without end could exhaust it, and a child left in
the background could hold a pipe open until the timeout. Only the start and the end of the
file are read back, without following links the agent may have planted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from .._errors import ProcessError
from ..sandbox import ExecResult, Host
from ._output import render_cut

__all__ = ["APP", "host_command", "host_start", "read_capture"]

APP = "/srv/app"


def read_capture(path: Path, limit: int) -> tuple[bytes, bytes, int]:
    """The first and last bytes (``limit`` in all) of a regular file, and its size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b"", b"", 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b"", b"", 0
        size = st.st_size
        if size <= limit:
            return os.pread(fd, size, 0), b"", size
        head = (limit + 1) // 2
        tail = limit - head
        return os.pread(fd, head, 0), os.pread(fd, tail, size - tail), size
    finally:
        os.close(fd)


async def host_command(
    host: Host,
    command: str,
    timeout: float,
    max_output: int,
    env: Mapping[str, str] | None = None,
) -> ExecResult:
    """Run ``command`` on ``host`` in ``/srv/app`` with ``env`` added to its environment
    (the task's contract); on timeout it dies with its children."""
    name = f".infragym-out-{secrets.token_hex(6)}"
    argv = ["/bin/sh", "-c", 'exec /bin/bash -c "$1" >"$2" 2>&1', "sh", command, f"/tmp/{name}"]
    t0 = time.monotonic()
    timed_out = False
    exit_code: int | None = None
    extra = b""
    try:
        r = await asyncio.to_thread(host.run, argv, timeout=timeout, cwd=APP, env=env)
        exit_code, extra = r.returncode, r.stdout + r.stderr
    except ProcessError:
        if time.monotonic() - t0 < timeout:
            raise  # not a timeout: the platform could not run it
        timed_out = True
    path = host.tmp_dir / name
    try:
        head, tail, total = read_capture(path, max_output)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    head = extra[:max_output] + head
    return ExecResult(
        exit_code=exit_code,
        output=head + tail,
        total_bytes=total + len(extra[:max_output]),
        cut_at=len(head),
        timed_out=timed_out,
        duration_s=time.monotonic() - t0,
    )


async def host_start(
    host: Host, name: str, command: str, env: Mapping[str, str] | None = None
) -> str:
    """Start ``command`` on ``host`` as a background process named ``name``."""
    proc = await asyncio.to_thread(
        host.spawn, name, ["/bin/bash", "-c", command], cwd=APP, env=env, service=False
    )
    for _ in range(20):  # a command that fails at once is worth reporting now
        if not proc.alive():
            break
        await asyncio.sleep(0.01)
    log = f"/srv/logs/{name}.log"
    if proc.alive():
        return (
            f"started {name} on {host.name}: it keeps running until you submit; its output "
            f"goes to {log} there (read it with host_bash)"
        )
    head, tail, total = read_capture(host.logs_dir / f"{name}.log", 4096)
    out = render_cut(head, tail, total - len(head) - len(tail)) or "(no output)"
    return f"{name} on {host.name} exited at once with code {proc.returncode}; its output:\n{out}"
