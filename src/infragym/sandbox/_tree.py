"""Walk, copy and remove directory trees that untrusted code made, without recursion.

A host's ``/srv/logs`` and the agent's ``/workspace`` belong to code under test: a tree
there may be thousands of levels deep, hold hundreds of thousands of names, or be full
of links, pipes and setuid files. Python's own walkers recurse (a deep tree raises
RecursionError, which no ``except OSError`` catches) and follow what they are told to
follow. Everything here works on directory descriptors opened with ``O_NOFOLLOW``, one
level at a time, never follows a link, never opens anything but a regular file or a
directory, and holds a bounded number of descriptors however deep the tree is.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ConfigError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_EXAMPLES = 20


class TreeError(ConfigError):
    """A tree that cannot be copied as asked (too deep, too big, a special file)."""


def _open_dir(path: str | Path, dir_fd: int | None = None) -> int:
    return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "neither a file nor a directory"


@dataclass
class CopyReport:
    """What a bounded copy copied and what it left out."""

    names: int = 0
    bytes: int = 0
    left_out: int = 0
    stopped: str = ""  # why the copy stopped before the end, if it did
    examples: list[str] = field(default_factory=list)

    def leave_out(self, rel: str, why: str) -> None:
        self.left_out += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{rel}: {why}")

    @property
    def complete(self) -> bool:
        return not self.left_out and not self.stopped

    def note(self) -> str:
        """A few lines saying what was left out (empty if nothing was)."""
        if self.complete:
            return ""
        lines = [f"copied {self.names:,} names and {self.bytes:,} bytes"]
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}; what follows was not looked at")
        if self.left_out:
            lines.append(f"left out {self.left_out:,} names, for example:")
            lines += [f"  {e}" for e in self.examples]
        return "\n".join(lines) + "\n"


@dataclass
class _Frame:
    src: int
    dst: int
    entries: Iterator[os.DirEntry[str]]
    rel: str
    mode: int
    depth: int


class _Copier:
    def __init__(
        self,
        *,
        max_depth: int,
        max_names: int | None,
        max_bytes: int | None,
        links: bool,
        strict: bool,
    ) -> None:
        self.max_depth = max_depth
        self.max_names = max_names
        self.max_bytes = max_bytes
        self.links = links
        self.strict = strict
        self.report = CopyReport()
        self.stack: list[_Frame] = []

    def refuse(self, rel: str, why: str) -> None:
        if self.strict:
            raise TreeError(f"{rel} {why}")
        self.report.leave_out(rel, why)

    def full(self) -> bool:
        if self.max_names is not None and self.report.names >= self.max_names:
            self.report.stopped = f"the limit of {self.max_names:,} names was reached"
            if self.strict:
                raise TreeError(f"the tree holds more than {self.max_names:,} names")
            return True
        return False

    def push(self, src: int, dst: int, rel: str, mode: int, depth: int) -> None:
        try:
            entries = os.scandir(src)
        except BaseException:
            os.close(src)
            os.close(dst)
            raise
        self.stack.append(_Frame(src, dst, entries, rel, mode, depth))

    def pop(self) -> None:
        f = self.stack.pop()
        try:
            getattr(f.entries, "close", lambda: None)()
            os.fchmod(f.dst, stat.S_IMODE(f.mode) & 0o777)  # no setgid or sticky bits
        finally:
            os.close(f.src)
            os.close(f.dst)

    def run(self, src: Path, dest: Path) -> CopyReport:
        dest.mkdir(parents=True, exist_ok=True)
        s = _open_dir(src)
        try:
            mode = os.fstat(s).st_mode
            d = _open_dir(dest)
        except BaseException:
            os.close(s)
            raise
        self.push(s, d, "", mode, 0)
        try:
            while self.stack:
                f = self.stack[-1]
                entry = next(f.entries, None)
                if entry is None:
                    self.pop()
                    continue
                if self.full():
                    break
                try:
                    self.one(f, entry)
                except OSError as exc:
                    if self.strict:
                        raise
                    self.report.leave_out(f.rel + entry.name, f"could not be copied ({exc})")
        finally:
            while self.stack:
                with contextlib.suppress(OSError):
                    self.pop()
        return self.report

    def one(self, f: _Frame, entry: os.DirEntry[str]) -> None:
        rel = f"{f.rel}{entry.name}"
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return  # gone meanwhile
        if stat.S_ISDIR(st.st_mode):
            if f.depth + 1 > self.max_depth:
                self.refuse(rel + "/", f"is deeper than {self.max_depth} levels")
                return
            try:
                s = _open_dir(entry.name, f.src)
            except OSError as exc:
                self.refuse(rel + "/", f"cannot be opened ({exc.strerror})")
                return
            try:
                with contextlib.suppress(FileExistsError):  # copying into an earlier copy
                    os.mkdir(entry.name, 0o700, dir_fd=f.dst)
                d = _open_dir(entry.name, f.dst)
            except BaseException:
                os.close(s)
                raise
            self.report.names += 1
            self.push(s, d, rel + "/", st.st_mode, f.depth + 1)
        elif stat.S_ISREG(st.st_mode):
            self.copy_file(f, entry.name, rel, st)
        elif stat.S_ISLNK(st.st_mode) and self.links:
            target = os.readlink(entry.name, dir_fd=f.src)
            with contextlib.suppress(FileNotFoundError):  # copying into an earlier copy
                os.unlink(entry.name, dir_fd=f.dst)
            os.symlink(target, entry.name, dir_fd=f.dst)
            self.report.names += 1
        else:
            self.refuse(rel, f"is {_kind(st.st_mode)}")

    def copy_file(self, f: _Frame, name: str, rel: str, st: os.stat_result) -> None:
        size = max(st.st_size, st.st_blocks * 512) if self.strict else st.st_size
        room = None if self.max_bytes is None else self.max_bytes - self.report.bytes
        if room is not None and size > room:
            if self.strict:
                raise TreeError(f"the tree holds more than {self.max_bytes:,} bytes")
            if room <= 0:
                self.refuse(rel, f"the limit of {self.max_bytes:,} bytes was reached")
                return
        try:
            src = os.open(name, _FILE_FLAGS, dir_fd=f.src)
        except OSError as exc:
            self.refuse(rel, f"cannot be opened ({exc.strerror})")
            return
        try:
            st = os.fstat(src)
            if not stat.S_ISREG(st.st_mode):  # replaced meanwhile
                self.refuse(rel, f"is {_kind(st.st_mode)}")
                return
            start = 0
            if room is not None and st.st_size > room:
                start = st.st_size - room  # keep the end: the latest lines of a log
                self.report.leave_out(rel, f"kept its last {room:,} of {st.st_size:,} bytes")
            # no setuid, setgid or sticky bit survives a copy the platform makes as root
            mode = stat.S_IMODE(st.st_mode) & 0o777
            dst = os.open(name, _OUT_FLAGS, mode, dir_fd=f.dst)
            try:
                os.fchmod(dst, mode)  # whatever the umask
                copied = _copy_range(src, dst, start, st.st_size - start)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dst)
        finally:
            os.close(src)
        self.report.names += 1
        self.report.bytes += copied


def _copy_range(src: int, dst: int, offset: int, count: int) -> int:
    done = 0
    while done < count:
        n = os.sendfile(dst, src, offset + done, min(count - done, 1 << 24))
        if n == 0:  # the file shrank meanwhile
            break
        done += n
    return done


def copy_tree(
    src: str | Path,
    dest: str | Path,
    *,
    max_depth: int,
    max_names: int | None = None,
    max_bytes: int | None = None,
    links: bool = True,
    strict: bool = False,
) -> CopyReport:
    """Copy the regular files and directories of ``src`` into ``dest`` (created if need
    be), and its symbolic links as links if ``links``; setuid, setgid and sticky bits
    are dropped. What cannot or may not be copied (a pipe, a device, a link when
    ``links`` is false, a directory deeper than ``max_depth``, names past ``max_names``,
    bytes past ``max_bytes``) is left out and reported, or raises :class:`TreeError` if
    ``strict``. ``max_bytes`` counts a file's allocated size as well when ``strict`` (a
    sparse file is as big as it claims)."""
    copier = _Copier(
        max_depth=max_depth, max_names=max_names, max_bytes=max_bytes, links=links, strict=strict
    )
    return copier.run(Path(src), Path(dest))


def walk_tree(root: str | Path, max_depth: int) -> Iterator[tuple[int, str, os.stat_result]]:
    """Every name under ``root`` as ``(dir_fd, name, lstat)``, directories before what
    they hold, to ``max_depth`` levels; links are not followed. ``dir_fd`` is valid
    until the next item (use it to act on ``name`` without following links)."""
    stack: list[tuple[int, Iterator[os.DirEntry[str]], int]] = []

    def push(fd: int, depth: int) -> None:
        try:
            stack.append((fd, os.scandir(fd), depth))
        except BaseException:
            os.close(fd)
            raise

    try:
        push(_open_dir(root), 0)
        while stack:
            fd, entries, depth = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                getattr(entries, "close", lambda: None)()
                os.close(fd)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield fd, entry.name, st
            if stat.S_ISDIR(st.st_mode) and depth < max_depth:
                with contextlib.suppress(OSError):
                    push(_open_dir(entry.name, fd), depth + 1)
    finally:
        for fd, entries, _ in stack:
            getattr(entries, "close", lambda: None)()
            os.close(fd)


def remove_tree(path: str | Path) -> bool:
    """Remove ``path`` and everything under it, however deep, never following a link;
    True if it is gone. Never raises for what is in the tree.

    Subdirectories are moved up next to the top before they are emptied, so the work
    needs two descriptors whatever the depth."""
    path = Path(path)
    try:
        parent = _open_dir(path.parent)
    except OSError:
        return not os.path.lexists(path)
    try:
        try:
            os.unlink(path.name, dir_fd=parent)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            pass  # a directory (EISDIR or EPERM)
        try:
            top = _open_dir(path.name, parent)
        except OSError:
            return not os.path.lexists(path)
        try:
            _empty(top)
        finally:
            os.close(top)
        try:
            os.rmdir(path.name, dir_fd=parent)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return True
    finally:
        os.close(parent)


def _empty(top: int) -> None:
    """Empty the directory ``top``: move each non-empty subdirectory up into ``top`` under
    a fresh name, then empty and remove it in turn."""
    queue: deque[str | None] = deque([None])
    rounds = 0
    while queue:
        name = queue.popleft()
        if name is None:
            rounds += 1
            if rounds > 3:
                continue  # top keeps being refilled: give up on it, finish the rest
        try:
            fd = top if name is None else _open_dir(name, top)
        except OSError:
            continue
        entries: list[tuple[str, bool]] = []
        try:
            with contextlib.suppress(OSError), os.scandir(fd) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            for entry, is_dir in entries:
                if not is_dir:
                    with contextlib.suppress(OSError):
                        os.unlink(entry, dir_fd=fd)
                    continue
                with contextlib.suppress(OSError):
                    os.rmdir(entry, dir_fd=fd)
                    continue
                if name is None:
                    queue.append(entry)
                    continue
                moved = f".rm-{secrets.token_hex(8)}"
                with contextlib.suppress(OSError):
                    os.rename(entry, moved, src_dir_fd=fd, dst_dir_fd=top)
                    queue.append(moved)
        finally:
            if fd != top:
                os.close(fd)
        if name is not None:
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=top)
        elif entries and rounds <= 3:
            queue.append(None)  # look at top again once its subdirectories are done
