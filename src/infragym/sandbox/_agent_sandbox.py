"""The contract of an agent's sandbox, and what every backend shares.

A backend implements a lifecycle (``start``, ``close``) and one operation, ``exec``;
``read_file`` and ``write_file`` are built on ``exec``: they run a fixed shell script as the
agent, inside the sandbox, so a path (symlinks included) resolves in the agent's own view
and is refused when it resolves outside the workspace. Nothing of the agent runs while a
tool call does, so the resolved path cannot change under the script.

Operations report what the agent got wrong as ``OSError`` (a path outside the workspace is a
``PermissionError``, a missing file ``FileNotFoundError``); any other exception is a failure
of the platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from .._errors import ResourceError

__all__ = [
    "WORKSPACE",
    "AgentSandbox",
    "ExecResult",
    "FileData",
    "OutputCapture",
    "drain_and_wait",
    "feed",
    "kill_tree",
]

WORKSPACE = "/workspace"
FILE_OP_TIMEOUT = 30.0

# $1 = read|write, $2 = path, $3 = max bytes to read. Exit codes name the agent's mistake.
_FILE_OPS = r"""
case "$2" in /*) p=$2 ;; *) p=/workspace/$2 ;; esac
r=$(realpath -m -- "$p" 2>/dev/null) || exit 10
case "$r" in /workspace|/workspace/*) ;; *) printf '%s' "$r"; exit 11 ;; esac
if [ "$1" = read ]; then
  [ -e "$r" ] || exit 12
  [ -d "$r" ] && exit 13
  [ -f "$r" ] || exit 14
  [ -r "$r" ] || exit 15
  printf '%s\000%s\000' "$r" "$(stat -c %s -- "$r")"
  exec head -c "$3" -- "$r"
fi
[ -d "$r" ] && exit 13
[ -e "$r" ] && ! [ -f "$r" ] && exit 14
mkdir -p -- "$(dirname -- "$r")" 2>/dev/null || exit 16
printf '%s\000' "$r"
exec cat > "$r"
"""


@dataclass(frozen=True)
class ExecResult:
    """What a command did. ``output`` is stdout and stderr interleaved.

    Past ``max_output`` bytes only the start and the end are kept: ``output[:cut_at]`` is the
    start, ``output[cut_at:]`` the end, and ``cut_bytes`` were dropped between them.
    ``exit_code`` is None when the command was killed on timeout.
    """

    exit_code: int | None
    output: bytes
    total_bytes: int
    cut_at: int
    timed_out: bool
    duration_s: float

    @property
    def cut_bytes(self) -> int:
        return self.total_bytes - len(self.output)


@dataclass(frozen=True)
class FileData:
    """The first bytes of a file, its full size and its path in the sandbox's view."""

    data: bytes
    size: int
    path: str


class AgentSandbox(ABC):
    """Where an agent's tool calls run: a lifecycle, and operations that use it."""

    @abstractmethod
    def start(self) -> Self:
        """Make the sandbox (idempotent teardown must follow any failure)."""

    @abstractmethod
    def close(self) -> None:
        """Kill everything the agent started and remove the sandbox. Idempotent."""

    @abstractmethod
    def kill_all(self) -> int:
        """Kill every process of the agent now; returns how many there were."""

    @abstractmethod
    async def exec(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        max_output: int = 16384,
        input: bytes | None = None,
    ) -> ExecResult:
        """Run ``argv`` as the agent in the workspace; on timeout kill its whole tree."""

    async def read_file(self, path: str, *, max_bytes: int) -> FileData:
        """The first ``max_bytes`` of a regular file of the workspace, read as the agent."""
        r = await self._file_op("read", path, max_bytes, None)
        real, size, data = r.output.split(b"\0", 2)
        return FileData(data, int(size), real.decode(errors="replace"))

    async def write_file(self, path: str, data: bytes) -> str:
        """Create or replace a file of the workspace (and its directories), as the agent.

        Returns the file's path in the sandbox's view.
        """
        r = await self._file_op("write", path, 0, data)
        return r.output.split(b"\0", 1)[0].decode(errors="replace")

    async def _file_op(self, op: str, path: str, max_bytes: int, data: bytes | None) -> ExecResult:
        if "\0" in path:
            raise OSError(errno.EINVAL, f"invalid path {path!r}: it contains a NUL character")
        r = await self.exec(
            ["/bin/sh", "-c", _FILE_OPS, "sh", op, path, str(max_bytes)],
            timeout=FILE_OP_TIMEOUT,
            max_output=max_bytes + 8192,
            input=data,
        )
        if r.exit_code == 0:
            return r
        text = r.output.decode(errors="replace").strip()
        errors: dict[int | None, tuple[type[OSError], str]] = {
            None: (TimeoutError, f"{op} of {path} did not finish in {FILE_OP_TIMEOUT:.0f} s"),
            10: (OSError, f"invalid path {path!r}"),
            11: (PermissionError, f"{path} is outside the workspace {WORKSPACE} ({text})"),
            12: (FileNotFoundError, f"{path} does not exist"),
            13: (IsADirectoryError, f"{path} is a directory"),
            14: (OSError, f"{path} is not a regular file"),
            15: (PermissionError, f"{path} is not readable"),
            16: (NotADirectoryError, f"cannot create the directories of {path}"),
        }
        kind, msg = errors.get(r.exit_code, (OSError, f"cannot {op} {path}: {text[-500:]}"))
        raise kind(msg)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class OutputCapture:
    """Keeps the first and the last bytes of a stream (``limit`` in all), counts the rest."""

    def __init__(self, limit: int) -> None:
        limit = max(0, limit)
        self.head_max = (limit + 1) // 2
        self.tail_max = limit - self.head_max
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.head) < self.head_max:
            n = self.head_max - len(self.head)
            self.head += chunk[:n]
            chunk = chunk[n:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_max:
                del self.tail[: len(self.tail) - self.tail_max]

    def result(self, exit_code: int | None, timed_out: bool, duration_s: float) -> ExecResult:
        return ExecResult(
            exit_code=exit_code,
            output=bytes(self.head + self.tail),
            total_bytes=self.total,
            cut_at=len(self.head),
            timed_out=timed_out,
            duration_s=duration_s,
        )


async def feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    """Write ``data`` to the process's stdin and close it (a process may not read it all)."""
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()


async def drain_and_wait(proc: asyncio.subprocess.Process, cap: OutputCapture | None) -> None:
    """Read what is left after a kill (the writers are dead, so EOF comes) and reap."""
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(1 << 16):
        if cap is not None:
            cap.add(chunk)
    await proc.wait()


async def kill_tree(proc: asyncio.subprocess.Process, cap: OutputCapture | None) -> None:
    """Kill a sandboxed command with everything it started; return once all of it is gone.

    ``proc`` is a monitor (bwrap) whose child is the init of the command's own PID
    namespace. That init is killed, not the monitor: the kernel then kills every process of
    the namespace, and the monitor reaps the init only when they are all gone, so its exit
    means the whole tree is dead (killing both at once would return while the namespace is
    still being torn down). A monitor that has no child yet is killed with its group.
    """
    try:
        text = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
        inits = [int(p) for p in text.split()]
    except (OSError, ValueError):
        inits = []
    for pid in inits:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for attempt in range(2):
        if attempt or not inits:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(drain_and_wait(proc, cap), 2.0 if attempt == 0 else 10.0)
            return
        except TimeoutError:
            if attempt:
                raise ResourceError(f"command {proc.pid} survived SIGKILL for 12 s") from None
