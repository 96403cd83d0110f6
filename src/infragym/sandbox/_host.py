"""One host of a cluster: a network namespace, a mount view, a cgroup and its processes.

A process on a host is started by forking, joining the host's cgroups and network
namespace in the child before exec, then exec'ing bubblewrap, which gives the process the
host's mount view: its own directories at ``/srv/data``, ``/srv/logs``, ``/srv/etc``, its
own ``/tmp`` and ``/etc/hosts``, its hostname, and no sight of other hosts' directories.
bwrap execs the command in place (no pid namespace), so the child we fork *is* the service
and heads its own process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import CapabilityError, ConfigError, ProcessError
from ._cgroup import HostCgroup
from ._netns import enter_netns, socket_in_netns
from ._sys import can_connect

VIEW_ROOT = "/srv"
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
FAKETIME_FILE = "faketime.rc"


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

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM the process group, then SIGKILL it if it has not exited in ``timeout``."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
        return self.popen.wait(5.0)

    def output(self, max_bytes: int = 1 << 20) -> str:
        """The tail of what the process wrote (stdout and stderr, interleaved)."""
        return read_tail(self.log_path, max_bytes)


def read_tail(path: Path, max_bytes: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


class Host:
    """A machine of the cluster. Built and removed by :class:`Cluster`."""

    def __init__(
        self,
        name: str,
        index: int,
        address: str,
        netns: str,
        root: Path,
        cgroup: HostCgroup,
        bwrap: str,
    ) -> None:
        self.name = name
        self.index = index
        self.address = address
        self.netns = netns
        self.root = root
        self.cgroup = cgroup
        self._bwrap = bwrap
        self.processes: list[HostProcess] = []
        self.services: dict[str, ServiceSpec] = {}
        self.data_dir = root / "data"
        self.logs_dir = root / "logs"
        self.etc_dir = root / "etc"
        self.tmp_dir = root / "tmp"
        self.faketime = False

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address})"

    # -- processes -----------------------------------------------------------------------

    def _argv(self, spec: ServiceSpec) -> list[str]:
        r = self.root
        argv = [
            self._bwrap,
            "--dev-bind",
            "/",
            "/",
            "--tmpfs",
            str(r.parent.parent),
            "--tmpfs",
            VIEW_ROOT,
            "--bind",
            str(r / "data"),
            f"{VIEW_ROOT}/data",
            "--bind",
            str(r / "logs"),
            f"{VIEW_ROOT}/logs",
            "--bind",
            str(r / "etc"),
            f"{VIEW_ROOT}/etc",
            "--bind",
            str(r / "tmp"),
            "/tmp",
            "--ro-bind",
            str(r / "etc" / "hosts"),
            "/etc/hosts",
            "--unshare-uts",
            "--hostname",
            self.name,
            "--unshare-ipc",
        ]
        if spec.cwd is not None:
            argv += ["--chdir", spec.cwd]
        return [*argv, "--", *spec.argv]

    def _env(self, spec: ServiceSpec) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": "/tmp",
            "INFRAGYM_HOST": self.name,
            "INFRAGYM_ADDRESS": self.address,
            "INFRAGYM_DATA_DIR": f"{VIEW_ROOT}/data",
            "INFRAGYM_LOG_DIR": f"{VIEW_ROOT}/logs",
            "INFRAGYM_ETC_DIR": f"{VIEW_ROOT}/etc",
        }
        if self.faketime:
            # libfaketime re-reads this file (cached 1 s), so ClockSkew can move the clock
            # of running processes; Debian's build needs monotonic faked too, or sleep fails
            env.update(
                {
                    "LD_PRELOAD": FAKETIME_LIB,
                    "FAKETIME_TIMESTAMP_FILE": f"{VIEW_ROOT}/etc/{FAKETIME_FILE}",
                    "FAKETIME_CACHE_DURATION": "1",
                    "FAKETIME_DONT_FAKE_MONOTONIC": "0",
                }
            )
        env.update(spec.env)
        return env

    def set_clock_offset(self, seconds: float) -> None:
        """Skew the clock of this host's faketime processes by ``seconds``."""
        if not self.faketime:
            raise CapabilityError(
                f"host {self.name} was built without libfaketime; clock skew applies only to "
                "processes started with it: create the cluster with Cluster(..., faketime=True)"
            )
        tmp = self.etc_dir / (FAKETIME_FILE + ".tmp")
        tmp.write_text(f"{seconds:+.3f}\n")
        tmp.replace(self.etc_dir / FAKETIME_FILE)

    def _preexec(self) -> None:
        pid = str(os.getpid())
        for f in self.cgroup.procs_files():
            with open(f, "w") as fh:
                fh.write(pid)
        enter_netns(self.netns)

    def _popen(
        self, spec: ServiceSpec, stdout: int, stderr: int, stdin: int = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        if not spec.argv:
            raise ConfigError(f"process {spec.name!r} on host {self.name}: argv is empty")
        try:
            return subprocess.Popen(
                self._argv(spec),
                env=self._env(spec),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=self._preexec,
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ProcessError(
                f"cannot start {spec.name!r} ({' '.join(spec.argv)}) on host {self.name}: {exc}"
            ) from exc

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        service: bool = True,
    ) -> HostProcess:
        """Start a long-running process; output goes to ``logs/<name>.log``.

        A ``service`` is restarted by :meth:`restart` after a crash.
        """
        spec = ServiceSpec(name, tuple(argv), dict(env or {}), cwd)
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"invalid process name {name!r}: use letters, digits, - and _")
        log_path = self.logs_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = self._popen(spec, log.fileno(), subprocess.STDOUT)
        proc = HostProcess(self, spec, popen, log_path)
        self.processes.append(proc)
        if service:
            self.services[name] = spec
        return proc

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        cwd: str | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a command on the host to completion; its whole group is killed on timeout."""
        spec = ServiceSpec("run", tuple(argv), dict(env or {}), cwd)
        popen = self._popen(
            spec,
            subprocess.PIPE,
            subprocess.PIPE,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        )
        try:
            out, err = popen.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            popen.communicate()
            raise ProcessError(
                f"`{' '.join(argv)}` on host {self.name} did not finish within {timeout} s "
                "and was killed with its children"
            ) from None
        return subprocess.CompletedProcess(list(argv), popen.returncode, out, err)

    def pids(self) -> list[int]:
        """Every process of the host, found through its cgroup."""
        return self.cgroup.pids()

    def reap(self) -> None:
        for p in self.processes:
            p.popen.poll()
        self.processes = [p for p in self.processes if p.popen.returncode is None]

    def kill_all(self) -> int:
        """SIGKILL every process of the host (a crash). Returns how many were killed."""
        n = self.cgroup.kill_all()
        for p in self.processes:
            try:
                p.popen.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
        self.reap()
        return n

    def restart(self) -> list[HostProcess]:
        """Start again every service that is not running (after a crash)."""
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
        self.cgroup.thaw()

    def log(self, name: str, max_bytes: int = 1 << 20) -> str:
        return read_tail(self.logs_dir / f"{name}.log", max_bytes)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket in this host's network namespace (for probes and measurements)."""
        return socket_in_netns(self.netns, family, type)

    def can_connect(self, address: str, port: int, timeout: float = 1.0) -> bool:
        """Whether this host can open a TCP connection to ``address:port``."""
        return can_connect(self.netns, address, port, timeout)

    def wait_port(self, port: int, timeout: float = 10.0) -> None:
        """Wait until something listens on ``port`` in the host's namespace."""
        deadline = time.monotonic() + timeout
        want = f":{port:04X}"
        while time.monotonic() < deadline:
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
                                return
            time.sleep(0.01)
        raise ProcessError(
            f"nothing listens on port {port} of host {self.name} after {timeout} s; "
            f"see the logs in {self.logs_dir}"
        )
