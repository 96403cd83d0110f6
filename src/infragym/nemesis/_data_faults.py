"""Faults of a host's data disk as incidents: a runaway log (:class:`RunawayLog`) and a
crash that leaves the data directory damaged (:class:`DamagedData`).

Both act through processes of the host itself, as its service user in its own view of
the disk (``/srv/data``): whatever the code under test left there (a link to a file of
the machine, say) cannot make the platform write outside the host's disk.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import posixpath
import re
import secrets
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import ConfigError, InfraGymError, ProcessError
from ..sandbox import HOST_PYTHON, Cluster, Host, HostProcess
from ..sandbox.lowlevel import pid_running
from ._fault import OneHostFault
from ._process_faults import Crash
from ._target import FaultTarget, Pick

__all__ = ["DAMAGE_KINDS", "DamagedData", "RunawayLog"]

DATA_VIEW = "/srv/data"
PATH_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]/-]{1,200}$")
MAX_RATE_BPS = 256 << 20
MIN_RATE_BPS = 1 << 10
DAMAGE_KINDS = ("truncate", "corrupt", "delete")
MAX_DAMAGED = 32
MAX_CORRUPT_BYTES = 1 << 20
OPTIONS: dict[str, tuple[tuple[str, float, float, float], ...]] = {
    "truncate": (("keep", 0.5, 0.0, 0.999),),  # keeping all of it is no damage
    "corrupt": (("bytes", 64, 1, MAX_CORRUPT_BYTES), ("at", 0.5, 0.0, 1.0)),
    "delete": (),
}
"""Each damage's options: (name, default, lowest, highest); an int default: whole."""
STOP_S = 5.0
MAX_WALK = 100_000
"""Names the damager looks at (directory entries and matches) before it stops walking."""
WALK_S = 10.0
"""Seconds the damager walks before it stops (it runs under a 30 s limit)."""
DAMAGE_TIMEOUT_S = 30.0

# The runaway writer: appends log lines to argv[1] at argv[2] bytes per second until the
# disk is full (persist: until stopped, writing again whenever room frees), reporting
# "<state> <bytes written> <seconds running> <seconds until first full or ->" lines on
# stdout (the platform's file) when its state changes: started, full, and why it stopped.
# It writes only to a regular file of the data disk (never through a link at the last
# name, never to a pipe or a device, nowhere else a directory link leads): anything else
# stops it with a write error. A report that cannot be written is dropped.
WRITER = r"""
import errno, os, signal, stat, sys, time
path, rate = sys.argv[1], float(sys.argv[2])
reopen, persist = sys.argv[3] == "1", sys.argv[4] == "1"
disk = os.stat("/srv/data").st_dev
stop = False
def term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, term)
t0 = time.monotonic()
written, full, fd, seq, state = 0, None, None, 0, "healed"
def report(what):
    f = "-" if full is None else f"{full:.3f}"
    try:
        os.write(1, f"{what} {written} {time.monotonic() - t0:.3f} {f}\n".encode())
    except OSError:
        pass
def open_log():
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(path, flags, 0o644)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_dev != disk:
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file of the data disk")
    os.set_blocking(fd, True)
    return fd
chunk = int(min(max(rate / 10, 4096), 1 << 20))
due = t0
report("started")
while not stop:
    try:
        if fd is None:
            fd = open_log()
        lines = []
        size = 0
        while size < chunk:
            seq += 1
            line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S')} DEBUG request trace seq={seq} "
                    "cache=miss upstream=primary retries=0 state=ok\n")
            lines.append(line)
            size += len(line)
        buf = "".join(lines).encode()
        while buf:
            n = os.write(fd, buf)
            written += n
            buf = buf[n:]
        if reopen:
            os.close(fd)
            fd = None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            state = "error " + (errno.errorcode.get(exc.errno or 0) or str(exc.errno))
            break
        if full is None:
            full = time.monotonic() - t0
            report("full")
        if not persist:
            state = "disk-full"
            break
        if reopen and fd is not None:
            os.close(fd)
            fd = None
        time.sleep(0.2)
        due = time.monotonic()
        continue
    due += size / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    elif now - due > 1.0:
        due = now
report(state)
"""

# The damager: as the host's user, in the host's view, damages what ``argv[1]`` (JSON)
# declares and prints what it did (JSON). It walks the directory itself, never through a
# link to a directory (a link loop cannot hold it), and stops at MAX_MATCHES names or
# WALK_S seconds ("truncated": true). A link at a matched name is followed only to a
# regular file of the data disk (its resolved path, "target", is what is damaged).
DAMAGER = r"""
import fnmatch, json, os, stat, sys, time
root = "/srv/data"
disk = os.stat(root).st_dev
plan, limit = json.loads(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + float(sys.argv[3])
out = {"damaged": [], "unmatched": [], "skipped": [], "failed": [], "truncated": False}
seen = 0
class Stop(Exception):
    pass
def tick():
    global seen
    seen += 1
    if seen > limit or time.monotonic() > deadline:
        out["truncated"] = True
        raise Stop
def entries(rel):
    try:
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for e in it:
                tick()
                yield e
    except (NotADirectoryError, FileNotFoundError, PermissionError):
        return
def is_dir(e):
    try:
        return e.is_dir(follow_symlinks=False)
    except OSError:
        return False
def join(rel, name):
    return f"{rel}/{name}" if rel else name
def match(rel, parts):
    if not parts:
        yield rel
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        yield from match(rel, rest)
        for e in entries(rel):
            if not e.name.startswith(".") and is_dir(e):
                yield from match(join(rel, e.name), parts)
    elif any(c in head for c in "*?["):
        for e in entries(rel):
            hidden = e.name.startswith(".") and not head.startswith(".")
            if not hidden and fnmatch.fnmatchcase(e.name, head) and (not rest or is_dir(e)):
                yield from match(join(rel, e.name), rest)
    else:
        tick()
        name = join(rel, head)
        full = os.path.join(root, name)
        if rest:
            if os.path.isdir(full) and not os.path.islink(full):
                yield from match(name, rest)
        elif os.path.lexists(full):
            yield name
def damage(item, name):
    full = os.path.join(root, name)
    real = os.path.realpath(full)
    if not real.startswith(root + "/"):
        out["skipped"].append(name)
        return
    try:
        st = os.stat(real, follow_symlinks=False)
    except OSError:
        out["skipped"].append(name)
        return
    if not stat.S_ISREG(st.st_mode) or st.st_dev != disk:
        out["skipped"].append(name)
        return
    size = st.st_size
    rec = {"path": full, "how": item["how"], "size": size}
    if real != full:
        rec["target"] = real
    if item["how"] == "delete":
        os.unlink(real)
    else:
        fd = os.open(real, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                out["skipped"].append(name)
                return
            if item["how"] == "truncate":
                rec["kept"] = int(size * item["keep"])
                os.ftruncate(fd, rec["kept"])
            else:
                n = min(item["bytes"], size)
                at = min(int(size * item["at"]), size - n)
                data = os.pread(fd, n, at)
                os.pwrite(fd, bytes(b ^ 0x5A for b in data), at)
                os.fsync(fd)
                rec.update(offset=at, bytes=len(data))
        finally:
            os.close(fd)
    out["damaged"].append(rec)
for item in plan:
    found = []
    try:
        for name in match("", item["path"].split("/")):
            if name:
                found.append(name)
                tick()
    except Stop:
        pass
    names = sorted(set(found))
    if not names:
        out["unmatched"].append(item["path"])
    for name in names:
        try:
            damage(item, name)
        except OSError as exc:
            err = exc.strerror or str(exc)
            out["failed"].append({"path": os.path.join(root, name), "error": err})
    if out["truncated"]:
        break
print(json.dumps(out))
"""


def _data_path(value: object, what: str) -> str:
    """A path under the data directory: relative, normalised, no ``..``."""
    if (
        not isinstance(value, str)
        or not PATH_RE.match(value)
        or value.startswith("/")
        or posixpath.normpath(value) != value
        or ".." in value.split("/")
    ):
        raise ConfigError(
            f"{what} must be a path relative to the host's data directory (letters, digits, "
            f"._-/ and glob characters; no .. or leading /), not {value!r}"
        )
    return value


class RunawayLog(OneHostFault):
    """A log that runs away on a host: a process of the host, as its service user, appends
    log lines to ``path`` (under ``/srv/data``) at ``rate_bps`` until the data disk is full
    (``persist``: until healed, writing again whenever room frees) or the fault heals.

    The writer holds the file open, as a logger does: deleting the file frees nothing
    while it runs (``reopen``: it opens the file for every write, so deleting it does).
    The operator's tools cannot see or signal it (it runs in a process namespace of its
    own); a crash of the host kills it. The heal stops it and records the path, the bytes
    it wrote, how long it ran, after how long the disk was full and why it stopped
    (``healed``, ``disk-full``, ``killed`` by a crash, or a write ``error``).
    """

    kind = "runaway-log"

    def __init__(
        self,
        host: str | FaultTarget | Pick,
        label: str | None = None,
        path: str = "log/debug.log",
        rate_bps: float = 1 << 20,
        reopen: bool = False,
        persist: bool = False,
    ) -> None:
        super().__init__(host, label)
        self.path = _data_path(path, f"{self.kind} fault {self.label!r}: path")
        rate = self._number("rate_bps", rate_bps)
        if not MIN_RATE_BPS <= rate <= MAX_RATE_BPS:
            raise self._bad(f"rate_bps must be in [{MIN_RATE_BPS}, {MAX_RATE_BPS}], not {rate}")
        for name, flag in (("reopen", reopen), ("persist", persist)):
            if not isinstance(flag, bool):
                raise self._bad(f"{name} must be true or false, not {flag!r}")
        self.rate_bps = rate
        self.reopen = reopen
        self.persist = persist
        self.process: HostProcess | None = None
        self._marker = ""
        self._report: dict[str, Any] = {}

    @property
    def view_path(self) -> str:
        return f"{DATA_VIEW}/{self.path}"

    def _inflict(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.victim)
        self._marker = f"runaway-{secrets.token_hex(6)}"
        out = host.platform_dir / f"{self._marker}.out"
        # -I: isolated (no user site under HOME=/tmp, no PYTHON* variables, no script
        # directory or cwd on the import path): nothing the host wrote runs in it
        argv = [HOST_PYTHON, "-I", "-c", WRITER, self.view_path, repr(self.rate_bps),
                str(int(self.reopen)), str(int(self.persist)), self._marker]  # fmt: skip
        self._report = {}
        self.process = host.spawn("runaway-log", argv, cwd=DATA_VIEW, service=False, output=out)
        return {"path": self.view_path, "rate_bps": self.rate_bps, "reopen": self.reopen,
                "persist": self.persist}  # fmt: skip

    def _restore(self, cluster: Cluster) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        host = cluster.host(self.victim)
        # the writer, not bubblewrap's monitor, holds the file (and its space): the heal
        # is over when it is gone. Asked to stop, it reports its last count; a writer
        # that does not stop in time (a paused host) is killed
        # that does not stop in time (a paused host) is killed. An exiting writer loses
        # its command line before it has closed its file: it is gone when its pid is
        # (or is a zombie), not when its command line is
        writers = set(self._writers(host))
        proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        while time.monotonic() < deadline and not host.cgroup.frozen():
            writers |= set(self._writers(host))
            if not _running(writers & set(host.pids())):
                break
            time.sleep(0.01)
        for pid in self._writers(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(InfraGymError):
            proc.stop(STOP_S)
        deadline = time.monotonic() + STOP_S
        while _running(writers & set(host.pids())) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._report = self._read(proc)

    def _writers(self, host: Host) -> list[int]:
        """The host's processes running this fault's writer (its marker in the argv)."""
        out = []
        for pid in host.pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if self._marker.encode() in argv and argv[0] == HOST_PYTHON.encode():
                out.append(pid)
        return out

    def _read(self, proc: HostProcess) -> dict[str, Any]:
        detail: dict[str, Any] = {"path": self.view_path, "bytes_written": 0}
        report = None
        for line in proc.output(1 << 16).split("\n"):
            parsed = parse_report(line)
            if parsed is not None:
                report = parsed
        if report is None:
            return {**detail, "stopped": "killed"}
        state, detail["bytes_written"], detail["ran_s"], detail["full_after_s"] = report
        final = state not in ("started", "writing", "full")
        detail["stopped"] = state if final else "killed"
        return detail

    def heal_detail(self) -> dict[str, Any]:
        return dict(self._report)


def _running(pids: set[int]) -> list[int]:
    """Those of ``pids`` that still run (neither gone nor a zombie, whose files are
    closed)."""
    return [pid for pid in pids if pid_running(pid)]


def parse_report(line: str) -> tuple[str, int, float, float | None] | None:
    """A line of the writer's report (``<state> <bytes> <ran s> <full after s or ->``,
    the state possibly two words: ``error ELOOP``); None for anything else."""
    parts = line.rsplit(" ", 3)
    if len(parts) != 4 or not parts[0]:
        return None
    state, written, ran, full = parts
    try:
        return state, int(written), float(ran), None if full == "-" else float(full)
    except ValueError:
        return None


def damage_plan(files: object, label: str) -> list[dict[str, Any]]:
    """``files`` of a damaged-data fault, checked: a list of tables, each a ``path`` (a
    glob under the data directory) and ``how`` (truncate: keep the first ``keep`` share
    of it, default 0.5; corrupt: flip ``bytes`` bytes, default 64, from ``at`` of the way
    in, default 0.5; delete)."""

    def bad(what: str) -> ConfigError:
        return ConfigError(f"damaged-data fault {label!r}: {what}")

    if isinstance(files, (str, bytes)) or not isinstance(files, Sequence) or not files:
        raise bad(
            f"files must be a list of 1-{MAX_DAMAGED} tables ({{ path, how }}), not {files!r}"
        )
    if len(files) > MAX_DAMAGED:
        raise bad(f"files lists at most {MAX_DAMAGED} entries, not {len(files)}")
    plan = []
    for i, item in enumerate(files):
        where = f"files[{i}]"
        if not isinstance(item, Mapping):
            raise bad(f"{where} must be a table {{ path = ..., how = ... }}, not {item!r}")
        unknown = sorted(set(item) - {"path", "how", "keep", "bytes", "at"})
        if unknown:
            raise bad(f"{where}: unknown keys {unknown} (known: path, how, keep, bytes, at)")
        path = _data_path(item.get("path"), f"damaged-data fault {label!r}: {where}.path")
        how = item.get("how")
        if how not in DAMAGE_KINDS:
            raise bad(f"{where}.how must be one of {', '.join(DAMAGE_KINDS)}, not {how!r}")
        entry: dict[str, Any] = {"path": path, "how": how}
        for key, default, lo, hi in OPTIONS[how]:
            v = item.get(key, default)
            whole = isinstance(default, int)
            ok = isinstance(v, int if whole else (int, float)) and not isinstance(v, bool)
            if not ok or not math.isfinite(v) or not lo <= v <= hi:
                kind = "whole number" if whole else "number"
                raise bad(f"{where}.{key} must be a {kind} in [{lo:g}, {hi:g}], not {v!r}")
            entry[key] = v
        extra = sorted(set(item) - {"path", "how"} - {o[0] for o in OPTIONS[how]})
        if extra:
            raise bad(f"{where}: {', '.join(extra)} does not apply to how = {how!r}")
        plan.append(entry)
    return plan


class DamagedData(Crash):
    """A crash that leaves the data directory damaged: every process of the host is
    SIGKILLed, then the files ``files`` declares (see :func:`damage_plan`) are truncated,
    corrupted or deleted, by a process of the host as its user. The timeline records
    each file damaged (size, what was kept or flipped where) and the patterns that
    matched nothing. The heal restarts the host's services (``restart``, as a crash's),
    on the damaged directory."""

    kind = "damaged-data"

    def __init__(
        self,
        host: str | FaultTarget | Pick,
        label: str | None = None,
        files: object = (),
        restart: bool = True,
    ) -> None:
        super().__init__(host, label, restart)
        self.plan = damage_plan(files, self.label)

    def _inflict(self, cluster: Cluster) -> dict[str, Any]:
        detail = super()._inflict(cluster)
        host = cluster.host(self.victim)
        # -I and cwd /: nothing the host wrote (a user site under HOME=/tmp, a module in
        # /srv/data) runs in it. What it could not do (a walk cut short, files it could
        # not touch, even its failure) is the fault's outcome, not the platform's error
        argv = [HOST_PYTHON, "-I", "-c", DAMAGER, json.dumps(self.plan), str(MAX_WALK),
                repr(WALK_S)]  # fmt: skip
        try:
            r = host.run(argv, timeout=DAMAGE_TIMEOUT_S, cwd="/", name="the damager")
        except ProcessError as exc:
            return {**detail, "damaged": [], "error": str(exc)[:500]}
        try:
            outcome = json.loads(r.stdout)
            if r.returncode != 0 or not isinstance(outcome, dict):
                raise ValueError(f"exit status {r.returncode}")
        except ValueError as exc:
            err = r.stderr.decode(errors="replace")[-500:]
            return {**detail, "damaged": [], "error": f"the damager failed ({exc}): {err}"}
        return {**detail, **outcome}
