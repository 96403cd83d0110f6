"""Thin wrappers over the kernel interfaces the sandbox needs: setns, mount, ip.

Python 3.11 has no ``os.setns`` and spawning ``mount`` or ``nsenter`` costs milliseconds, so
the few syscalls on the hot path go through libc directly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from .._errors import CapabilityError, InfraGymError, PrivilegeError, ResourceError
from ._netns import run_in_netns, socket_in_netns

T = TypeVar("T")
MNT_DETACH = 2
NETNS_DIR = Path("/var/run/netns")
MAX_INODES = 1 << 18  # names a sandbox tmpfs holds (files, directories, links)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def require_root(what: str) -> None:
    """Raise PrivilegeError unless running as root."""
    if os.geteuid() != 0:
        raise PrivilegeError(
            f"{what} needs root (network namespaces, cgroups and mounts); "
            "run as root, e.g. `sudo infragym ...`"
        )


def require_tools(*tools: str) -> dict[str, str]:
    """Return the absolute path of each tool, or raise CapabilityError naming the missing."""
    found: dict[str, str] = {}
    missing = []
    for t in tools:
        path = shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if path is None:
            missing.append(t)
        else:
            found[t] = path
    if missing:
        raise CapabilityError(
            f"missing tools: {', '.join(missing)}; install them with "
            "`apt-get install -y iproute2 nftables bubblewrap` (or run ./setup.sh)"
        )
    return found


def can_connect(netns: str, address: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection from ``netns`` to ``address:port`` succeeds."""
    s = socket_in_netns(netns)
    try:
        s.settimeout(timeout)
        s.connect((address, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def mount_tmpfs(
    target: Path,
    size_bytes: int,
    mode: int = 0o755,
    uid: int = 0,
    gid: int = 0,
    inodes: int | None = None,
) -> None:
    """Mount a tmpfs of ``size_bytes`` holding at most ``inodes`` names (by default
    :data:`MAX_INODES`: empty files take no space, and freeing each takes time at
    unmount, so the count bounds teardown whatever the code under test created)."""
    nr = MAX_INODES if inodes is None else inodes
    opts = f"size={size_bytes},nr_inodes={nr},mode={mode:o},uid={uid},gid={gid}".encode()
    if _libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", 0, opts) != 0:
        err = ctypes.get_errno()
        raise ResourceError(f"cannot mount a tmpfs on {target}: {os.strerror(err)}")


def bind_mount(source: str, target: str) -> None:
    """Bind-mount ``source`` on ``target`` (a namespace file on an empty file, say)."""
    if _libc.mount(source.encode(), target.encode(), None, 4096, None) != 0:  # MS_BIND
        err = ctypes.get_errno()
        raise ResourceError(f"cannot bind-mount {source} on {target}: {os.strerror(err)}")


def remount_tmpfs_size(target: Path, size_bytes: int) -> None:
    ms_remount = 32
    opts = f"size={size_bytes}".encode()
    if _libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", ms_remount, opts) != 0:
        err = ctypes.get_errno()
        raise ResourceError(f"cannot resize the tmpfs on {target}: {os.strerror(err)}")


def umount(target: str | Path) -> bool:
    """Lazily unmount; True if something was unmounted."""
    return bool(_libc.umount2(str(target).encode(), MNT_DETACH) == 0)


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below ``prefix``, deepest first."""
    out = []
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2:
                mp = parts[1].replace("\\040", " ")
                if mp == prefix or mp.startswith(prefix.rstrip("/") + "/"):
                    out.append(mp)
    return sorted(out, key=len, reverse=True)


def run(
    argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run a system tool; on failure raise ResourceError with its stderr.

    The tool runs in a process group of its own: a signal sent to ours (Ctrl-C at a
    terminal, ``timeout``, a batch scheduler) must not kill the ``ip`` that a teardown runs.
    """
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            process_group=0,
        )
    except FileNotFoundError:
        raise CapabilityError(f"{argv[0]} is not installed; run ./setup.sh") from None
    except subprocess.TimeoutExpired:
        raise ResourceError(f"{' '.join(argv)} did not finish within {timeout} s") from None
    if check and proc.returncode != 0:
        raise ResourceError(
            f"`{' '.join(argv)}` failed ({proc.returncode}): {proc.stderr.strip()[:2000]}"
        )
    return proc


def start(argv: Sequence[str], script: str) -> subprocess.Popen[str]:
    """Start a system tool reading ``script`` on its stdin, to run while the caller works
    on (:func:`finish` waits for it). Its own process group, as in :func:`run`."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    assert proc.stdin is not None
    proc.stdin.write(script)
    proc.stdin.close()
    return proc


def finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> str | None:
    """Wait for a tool :func:`start` started: None if it succeeded, else its stderr."""
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    return None if proc.wait(timeout) == 0 else err.strip()


def ip_batch(lines: Sequence[str], netns: str | None = None, *, check: bool = True) -> None:
    """Run many ``ip`` commands in one process (one fork instead of dozens)."""
    if not lines:
        return
    argv = ["ip"]
    if netns is not None:
        argv += ["-n", netns]
    argv += ["-force", "-batch", "-"]
    run(argv, input="\n".join(lines) + "\n", check=check)


def list_netns() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def list_links() -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir())


def abort_sockets(namespaces: Sequence[str]) -> None:
    """Abort every TCP socket left in the named network namespaces (``ss -K``, through
    sock_diag), in parallel; call it once their processes are gone.

    A TCP connection closed by its process's death lives on without it (an orphan) until
    its FIN is acknowledged, and it holds its namespace: deleted, the namespace stays, and
    so does its veth, until the orphan gives up, after up to ``tcp_orphan_retries`` (about
    100 s). A FIN goes unacknowledged when the peer's replies go elsewhere: a virtual IP
    that moved to another host (ha-web's load balancers after a fault sweep) or a partition.
    Best effort: on a kernel without CONFIG_INET_DIAG_DESTROY the orphans remain and the
    caller's wait for the links is what is left, and so it never raises: a namespace gone
    meanwhile, a missing or stuck ``ss`` leave the teardown to go on. ``ss`` runs only
    where a socket is left (most teardowns have none, and it costs a few milliseconds).
    """
    procs = []
    for ns in namespaces:
        try:
            if run_in_netns(ns, _tcp_sockets_in_use) > 0:
                procs.append(start(["ss", "-N", ns, "-K", "-t", "-a", "-n", "-H"], ""))
        except (OSError, ValueError, InfraGymError):
            continue
    for proc in procs:
        try:
            finish(proc, timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tcp_sockets_in_use() -> int:
    """TCP sockets, orphans and listeners included (not TIME_WAIT, which hold nothing),
    in the calling thread's network namespace."""
    n = 0
    for name in ("sockstat", "sockstat6"):
        try:
            with open(f"/proc/thread-self/net/{name}", encoding="ascii") as fh:
                for line in fh:
                    words = line.split()
                    if words and words[0] in ("TCP:", "TCP6:") and "inuse" in words:
                        n += int(words[words.index("inuse") + 1])
        except FileNotFoundError:  # no IPv6
            continue
    return n


def wait_links_gone(names: Sequence[str], timeout: float) -> bool:
    """Wait until none of ``names`` exists; the kernel removes a netns's veths lazily."""
    deadline = time.monotonic() + timeout
    while any(os.path.exists(f"/sys/class/net/{n}") for n in names):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def psi_some(field: str, path: Path) -> str | None:
    """One field (``total``, ``avg10``...) of the "some" line of a pressure (PSI) file, the
    machine's (``/proc/pressure/cpu``) or a cgroup v2 group's, as text; None if none."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for item in line.split()[1:]:
                name, _, value = item.partition("=")
                if name == field:
                    return value
    return None


def psi_total_us(path: Path) -> int | None:
    """The "some" total of a pressure file: microseconds in which some task waited."""
    value = psi_some("total", path)
    return None if value is None else int(value)


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (the state first, then
    the parent's pid, ...; the start time at 19), None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def pid_start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` (to tell a live owner from a reused pid)."""
    fields = proc_stat(pid)
    return None if fields is None else int(fields[19])


def parent_pid(pid: int) -> int:
    """``pid``'s parent, 0 if it is gone."""
    fields = proc_stat(pid)
    return int(fields[1]) if fields else 0


def descends_from(pid: int, ancestor: int) -> bool:
    """``pid`` is ``ancestor`` or one of its descendants (now)."""
    seen = 0
    while pid > 1 and seen < 64:
        if pid == ancestor:
            return True
        pid, seen = parent_pid(pid), seen + 1
    return False


def pid_state(pid: int) -> str | None:
    """``pid``'s state letter (``R``, ``S``, ``Z`` for a zombie...), None when it is gone."""
    fields = proc_stat(pid)
    return fields[0] if fields else None


def pid_running(pid: int) -> bool:
    """``pid`` runs: it exists and is no zombie (a killed process its parent has not
    reaped yet holds nothing: no files, no memory)."""
    return pid_state(pid) not in (None, "Z", "X")
