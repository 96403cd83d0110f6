"""One host of a cluster: a network namespace, a mount view, a cgroup and its processes.

A process on a host is started by forking, joining the host's cgroups and network
namespace in the child before exec, then exec'ing bubblewrap, setpriv and a minimal init
(see :mod:`._launch`: nothing on the host shows the platform's command lines or paths).
What runs on a host is untrusted (in grading it is the agent's system), so it gets:

- its own PID, UTS and IPC namespaces (it sees only its own processes, has the host's
  hostname);
- a read-only view of the machine's system directories only (``/usr``, ``/etc``: see
  :mod:`._view`) with the host's own writable directories at
  ``/srv/data`` (the host's disk), ``/srv/logs``, ``/srv/etc`` and ``/tmp``, its own
  ``/etc/hosts``, and a private ``/run``; other hosts' directories, the run state, the
  task folders, ``/run/netns``, ``/sys`` and every repository or home directory are out
  of sight;
- the uid and gid of its run (:mod:`._identity`: every run its own, named in the view's
  ``/etc/passwd`` and ``/etc/group``), no capabilities and ``no_new_privs``; binding
  ports below 1024 still
  works because each host namespace sets ``ip_unprivileged_port_start`` to 0. A host built
  with ``net_admin`` runs its processes with CAP_NET_ADMIN, CAP_NET_RAW and
  CAP_NET_BIND_SERVICE (ambient, so every program it starts keeps them) in the user
  namespace that owns its network namespace (:mod:`._userns`), and in no other.

``HostProcess.pid`` is bwrap's monitor process; the command runs under it in the PID
namespace (as the init's child), in the same process group, and every process of the host
is in its cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import CapabilityError, ConfigError, InfraGymError, ProcessError
from ._cgroup import HostCgroup
from ._identity import Identity
from ._launch import Launch
from ._netns import enter_netns, run_in_netns, socket_in_netns
from ._sockdiag import diag_socket, listening_tcp_ports
from ._switch import Port
from ._sys import can_connect, descends_from, pid_running, pid_start_time
from ._tree import remove_tree
from ._userns import enter_userns_of
from ._view import system_view

VIEW_ROOT = "/srv"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Debian's python: the platform's own interpreter (a virtualenv, pyenv under /root) may
# not be readable by the unprivileged user host processes run as
HOST_PYTHON = "/usr/bin/python3"
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
FAKETIME_FILE = "faketime.rc"
HOSTS_FILE = "hosts"  # of the platform dir: the view's /etc/hosts
FAKETIME_VIEW_PATH = "/run/faketime.rc"
NET_CAPS = ("net_admin", "net_raw", "net_bind_service")


@dataclass(frozen=True)
class ServiceSpec:
    """How to (re)start a long-running process on a host."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


class HostProcess:
    """A process started on a host; its stdout and stderr go to the host's log directory."""

    def __init__(
        self, host: Host, spec: ServiceSpec, popen: subprocess.Popen[bytes], log_path: Path
    ) -> None:
        self.host = host
        self.spec = spec
        self.popen = popen
        self.log_path = log_path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process's whole process group."""
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(
                f"process {self.name!r} on host {self.host.name} still running after {timeout} s"
            ) from None

    def _tree(self) -> list[tuple[int, int | None]]:
        """The host's processes descending from this one, with their start times (its
        sandbox's init and whatever that forked, in sessions of their own too)."""
        return [
            (pid, pid_start_time(pid))
            for pid in self.host.pids()
            if descends_from(pid, self.popen.pid)
        ]

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM the process group, then SIGKILL it if it has not exited in ``timeout``."""
        if self.popen.poll() is None and self.host.cgroup.frozen():
            raise ProcessError(
                f"cannot stop {self.name!r}: host {self.host.name} is paused; resume it first"
            )
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
        try:
            return self.popen.wait(5.0)
        except subprocess.TimeoutExpired:
            raise ProcessError(
                f"process {self.name!r} on host {self.host.name} survived SIGKILL for 5 s"
            ) from None

    def kill_tree(self, timeout: float = 1.0) -> int:
        """:meth:`stop`, then SIGKILL whatever the process's sandbox started that still
        runs ``timeout`` later: the sandbox's outer process exits at once on SIGTERM, so a
        process inside that ignores it (``trap '' TERM``) would outlive a plain stop (its
        sandbox's init goes too, and with it the whole process namespace)."""
        tree = self._tree() if self.popen.poll() is None else []
        code = self.stop(timeout)
        deadline = time.monotonic() + timeout

        def left() -> list[int]:
            return [p for p, t in tree if pid_running(p) and pid_start_time(p) == t]

        while left() and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in left():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return code

    def output(self, max_bytes: int = 1 << 20) -> str:
        """The tail of what the process wrote (stdout and stderr, interleaved)."""
        return read_tail(self.log_path, max_bytes)


def shown(argv: Sequence[str], width: int = 60) -> str:
    """``argv`` for a message: each argument's first line, cut at ``width`` characters
    (a script passed with ``-c`` is not repeated whole in an error)."""
    out = []
    for a in argv:
        line = a.split("\n", 1)[0]
        out.append(line[:width] + "..." if line != a or len(line) > width else a)
    return " ".join(out)


def read_tail(path: Path, max_bytes: int) -> str:
    """The end of a log the platform wrote. The logs directory belongs to the code under
    test, which may have put a link or a pipe there: never follow or wait on one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # missing, or a symbolic link (ELOOP)
        return ""
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


def open_log(path: Path) -> int:
    """A descriptor appending to the log ``path``, in a directory the code under test can
    write. Whatever it put at that name that is not a plain file of its own (a symbolic
    link to a file of the machine, a pipe) is removed rather than followed: the platform
    opens logs as root."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for _ in range(8):
        try:
            fd = os.open(path, flags | os.O_CREAT, 0o644)
        except IsADirectoryError:
            remove_tree(path)  # however deep, never following the links inside
            continue
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO):  # a link; a pipe nobody reads
                raise
        else:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                os.set_blocking(fd, True)
                return fd
            os.close(fd)
        path.unlink(missing_ok=True)  # a link, a pipe or a hard link: not a log of ours
    raise ProcessError(f"{path} keeps being replaced by something that is not a file")


class Host:
    """A machine of the cluster. Built and removed by :class:`Cluster`."""

    def __init__(
        self,
        port: Port,
        root: Path,
        cgroup: HostCgroup,
        identity: Identity,
        bwrap: str,
        setpriv: str = "setpriv",
        net_admin: bool = False,
    ) -> None:
        self.port = port
        self.name = port.name
        self.index = port.index
        self.address = port.address
        self.netns = port.netns
        self.mac = port.mac
        self.net_admin = net_admin
        self.root = root
        self.cgroup = cgroup
        self.identity = identity
        self._bwrap = bwrap
        self._setpriv = setpriv
        self._lock = threading.RLock()
        self._restart_pending = False
        self.processes: list[HostProcess] = []
        self.services: dict[str, ServiceSpec] = {}
        self.data_dir = root / "data"
        self.logs_dir = root / "logs"
        self.etc_dir = root / "etc"
        self.tmp_dir = root / "tmp"
        self.platform_dir = root / ".platform"  # platform files, outside the host's view
        self.app_dir: Path | None = None  # deployed read-only at /srv/app
        self.hidden: tuple[Path, ...] = ()  # emptied in the view even under /usr or /etc
        self.faketime = False

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address})"

    # -- processes -----------------------------------------------------------------------

    def _launch(self, spec: ServiceSpec) -> Launch:
        r = self.root
        options = [
            *system_view(self.hidden),
            "--dev", "/dev",
            "--perms", "1777", "--tmpfs", "/dev/shm",
            "--proc", "/proc",
            "--tmpfs", "/run",
            "--tmpfs", VIEW_ROOT,
            "--bind", str(r / "data"), f"{VIEW_ROOT}/data",
            "--bind", str(r / "logs"), f"{VIEW_ROOT}/logs",
            "--bind", str(r / "etc"), f"{VIEW_ROOT}/etc",
            "--bind", str(r / "tmp"), "/tmp",
            "--unshare-pid", "--unshare-uts", "--unshare-ipc",
            "--hostname", self.name,
        ]  # fmt: skip
        if self.app_dir is not None:
            options += ["--ro-bind", str(self.app_dir), f"{VIEW_ROOT}/app"]
        if self.faketime:
            # a bind, not a copy: ClockSkew rewrites the file in place (mountinfo shows
            # it as /faketime.rc of the host's platform disk, a tmpfs: no machine path)
            options += ["--ro-bind", str(self.platform_dir / FAKETIME_FILE), FAKETIME_VIEW_PATH]
        if spec.cwd is not None:
            options += ["--chdir", spec.cwd]
        caps = "".join(f",+{c}" for c in NET_CAPS) if self.net_admin else ""
        privdrop = [
            self._setpriv,
            "--reuid", str(self.identity.uid), "--regid", str(self.identity.gid),
            "--clear-groups",
            f"--inh-caps=-all{caps}", f"--bounding-set=-all{caps}", "--no-new-privs",
        ]  # fmt: skip
        if caps:
            privdrop.append(f"--ambient-caps={caps[1:]}")
        privdrop.append("--")
        argv: list[str] = []
        if self.faketime:
            # preload libfaketime into the service only (not bwrap, setpriv or the init);
            # it re-reads the offset file (cached 1 s), so ClockSkew moves the clock of
            # running processes. Debian's build needs monotonic faked too, or sleep
            # fails with EINVAL; shared memory off: each process reads the file.
            argv += [
                "/usr/bin/env",
                f"LD_PRELOAD={FAKETIME_LIB}",
                f"FAKETIME_TIMESTAMP_FILE={FAKETIME_VIEW_PATH}",
                "FAKETIME_CACHE_DURATION=1",
                "FAKETIME_DONT_FAKE_MONOTONIC=0",
                "FAKETIME_DISABLE_SHM=1",
            ]
        # a bind, not a copy: a cluster that grows appends the new hosts' lines in place,
        # and processes already running resolve them (mountinfo shows the file as
        # /hosts of the host's platform disk, as it does the faketime file)
        options += ["--ro-bind", str(self.platform_dir / HOSTS_FILE), "/etc/hosts"]
        files = self.identity.view_files()
        return Launch.prepare(self._bwrap, options, privdrop, [*argv, *spec.argv], files)

    def _env(self, spec: ServiceSpec) -> dict[str, str]:
        env = {
            "PATH": HOST_PATH,
            "LANG": "C.UTF-8",
            "HOME": "/tmp",
            "INFRAGYM_HOST": self.name,
            "INFRAGYM_ADDRESS": self.address,
            "INFRAGYM_DATA_DIR": f"{VIEW_ROOT}/data",
            "INFRAGYM_LOG_DIR": f"{VIEW_ROOT}/logs",
            "INFRAGYM_ETC_DIR": f"{VIEW_ROOT}/etc",
        }
        env.update(spec.env)
        return env

    def set_clock_offset(self, seconds: float) -> None:
        """Skew the clock of this host's faketime processes by ``seconds``."""
        if not self.faketime:
            raise CapabilityError(
                f"host {self.name} was built without libfaketime; clock skew applies only to "
                "processes started with it: create the cluster with Cluster(..., faketime=True)"
            )
        # written in place (not renamed): the file is bind-mounted read-only into the
        # host's view, and a bind mount follows the inode
        fd = os.open(
            self.platform_dir / FAKETIME_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644
        )
        try:
            os.write(fd, f"{seconds:+.3f}\n".encode())
        finally:
            os.close(fd)

    def _preexec(self) -> None:
        pid = str(os.getpid())
        for f in self.cgroup.procs_files():
            with open(f, "w") as fh:
                fh.write(pid)
        enter_netns(self.netns)
        if self.net_admin:
            # as root of the host's own user namespace: bubblewrap builds the view
            # there, and what setpriv leaves the host counts nowhere else
            enter_userns_of(self.netns)

    def _popen(
        self, spec: ServiceSpec, stdout: int, stderr: int, stdin: int = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        if not spec.argv:
            raise ConfigError(f"process {spec.name!r} on host {self.name}: argv is empty")
        launch = self._launch(spec)
        try:
            return subprocess.Popen(
                launch.argv,
                env=self._env(spec),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=self._preexec,
                close_fds=True,
                pass_fds=launch.fds,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ProcessError(
                f"cannot start {spec.name!r} ({shown(spec.argv)}) on host {self.name}: {exc}"
            ) from exc
        finally:
            launch.close()

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        service: bool = True,
        output: Path | None = None,
    ) -> HostProcess:
        """Start a long-running process; output goes to ``logs/<name>.log``, or to
        ``output``, a file of :attr:`platform_dir` (out of the host's sight: the
        platform's own processes on a host, a fault's, report there).

        A ``service`` is restarted by :meth:`restart` after a crash.
        """
        spec = ServiceSpec(name, tuple(argv), dict(env or {}), cwd)
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"invalid process name {name!r}: use letters, digits, - and _")
        if output is not None and (
            Path(output).parent != self.platform_dir
            or Path(output).name in (HOSTS_FILE, FAKETIME_FILE)
        ):
            raise ConfigError(
                f"output must be a new file of {self.platform_dir} (not its {HOSTS_FILE} or "
                f"{FAKETIME_FILE}), not {output}"
            )
        with self._lock:
            self._check_not_frozen(f"start {name!r}")
            log_path = self.logs_dir / f"{name}.log" if output is None else Path(output)
            log = open_log(log_path)
            try:
                popen = self._popen(spec, log, subprocess.STDOUT)
            finally:
                os.close(log)
            proc = HostProcess(self, spec, popen, log_path)
            self.processes.append(proc)
            if service:
                self.services[name] = spec
            return proc

    def _check_not_frozen(self, what: str) -> None:
        # a child joining a frozen cgroup freezes before exec and Popen never returns
        if self.cgroup.frozen():
            raise ProcessError(f"cannot {what} on host {self.name}: it is paused; resume it first")

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        cwd: str | None = None,
        name: str | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a command on the host to completion; it and its children die on timeout.
        Errors name it ``name`` (a platform script's short name), else by its argv (long
        or multi-line arguments cut).

        The command has its own PID namespace, so killing it on timeout kills every process
        it started, even ones that left its process group.
        """
        spec = ServiceSpec(name or "run", tuple(argv), dict(env or {}), cwd)
        what = name or f"`{shown(argv)}`"
        with self._lock:
            self._check_not_frozen(f"run {what}")
            popen = self._popen(
                spec,
                subprocess.PIPE,
                subprocess.PIPE,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            )
        try:
            out, err = popen.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            try:
                popen.communicate(timeout=5.0)
            except subprocess.TimeoutExpired:
                for f in (popen.stdin, popen.stdout, popen.stderr):
                    if f is not None:
                        f.close()
                popen.kill()
                popen.wait(5.0)
            raise ProcessError(
                f"{what} on host {self.name} did not finish within {timeout} s "
                "and was killed with its children"
            ) from None
        return subprocess.CompletedProcess(list(argv), popen.returncode, out, err)

    def pids(self) -> list[int]:
        """Every process of the host, found through its cgroup."""
        return self.cgroup.pids()

    def cpu_usage_s(self) -> float | None:
        """CPU seconds the host's processes have used so far, exited ones included (its
        cgroup's cpuacct; None once the host is removed)."""
        return self.cgroup.cpu_usage_s()

    def reap(self) -> None:
        with self._lock:
            for p in self.processes:
                p.popen.poll()
            self.processes = [p for p in self.processes if p.popen.returncode is None]

    def kill_all(self) -> int:
        """SIGKILL every process of the host (a crash); a paused host stays paused."""
        with self._lock:
            monitors = [p.pid for p in self.processes if p.popen.poll() is None]
            n = self.cgroup.kill_all(spare_first=monitors)
            for p in self.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.popen.wait(2.0)
            self.reap()
            return n

    def restart(self) -> list[HostProcess]:
        """Start again every service that is not running (after a crash).

        On a paused host the restart waits until :meth:`thaw`.
        """
        with self._lock:
            if self.cgroup.frozen():
                self._restart_pending = True
                return []
            self._restart_pending = False
            self.reap()
            running = {p.name for p in self.processes}
            return [
                self.spawn(s.name, s.argv, env=s.env, cwd=s.cwd)
                for s in list(self.services.values())
                if s.name not in running
            ]

    def freeze(self) -> None:
        self.cgroup.freeze()

    def thaw(self) -> None:
        with self._lock:
            self.cgroup.thaw()
            if self._restart_pending:
                self.restart()

    def log(self, name: str, max_bytes: int = 1 << 20) -> str:
        return read_tail(self.logs_dir / f"{name}.log", max_bytes)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket in this host's network namespace (for probes and measurements)."""
        return socket_in_netns(self.netns, family, type)

    def can_connect(self, address: str, port: int, timeout: float = 1.0) -> bool:
        """Whether this host can open a TCP connection to ``address:port``."""
        return can_connect(self.netns, address, port, timeout)

    def wait_port(self, port: int, timeout: float = 10.0) -> None:
        """Wait until something listens on ``port`` in the host's namespace.

        Asked of the kernel by sock_diag netlink (:mod:`._sockdiag`: a read of
        ``/proc/<pid>/net/tcp`` costs ~6 ms of kernel time whatever the namespace holds),
        every 5 ms at first, backing off to 20 ms."""
        deadline = time.monotonic() + timeout
        try:
            diag: socket.socket | None = run_in_netns(self.netns, diag_socket)
        except (OSError, InfraGymError):
            diag = None  # no sock_diag here (or no namespace): the /proc tables, until timeout
        pause = 0.005
        try:
            while time.monotonic() < deadline:
                if diag is not None:
                    try:
                        if port in listening_tcp_ports(diag):
                            return
                    except OSError:
                        diag.close()
                        diag = None
                if diag is None and self._listens_by_proc(port):
                    return
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(0.02, pause * 1.5)
        finally:
            if diag is not None:
                diag.close()
        raise ProcessError(
            f"nothing listens on port {port} of host {self.name} after {timeout} s; "
            f"see the logs in {self.logs_dir}"
        )

    def _listens_by_proc(self, port: int) -> bool:
        """Whether ``/proc/<pid>/net/tcp{,6}`` of a live process of the host lists a
        listener on ``port`` (where the kernel has no sock_diag)."""
        want = f":{port:04X}"
        for p in self.processes:
            if p.alive():
                for table in ("net/tcp", "net/tcp6"):
                    try:
                        text = Path(f"/proc/{p.pid}/{table}").read_text()
                    except OSError:
                        continue
                    for line in text.splitlines()[1:]:
                        cols = line.split()
                        if len(cols) > 3 and cols[1].endswith(want) and cols[3] == "0A":
                            return True
        return False
