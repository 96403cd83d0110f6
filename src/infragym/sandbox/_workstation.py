"""The agent's workstation: a bubblewrap sandbox around one episode's workspace.

Lifecycle (:meth:`~AgentSandbox.start`, :meth:`~AgentSandbox.close`) is kept apart from
operations (``exec``, ``read_file``, ``write_file``), as inspect_ai splits its sandboxes, so
the env can tear a workstation down from anywhere while operations stay simple.

Each command is a fresh process tree, launched the way host processes are: forked, joined to
the workstation's cgroups (pids, memory, cpu, cpuacct, freezer) and network namespace before
exec, then bubblewrap and ``setpriv`` to the workstation's own uid and gid
(:mod:`._identity`) with no capabilities and ``no_new_privs``, in its own PID namespace
under a minimal init that shows nothing of the platform (:mod:`._launch`). When the
command's main process exits, or is killed on timeout, the kernel kills everything it
started: nothing the agent runs outlives its command.

The view is a whitelist (:mod:`._view`, shared with the dev hosts), not the machine's ``/``
read-only as hosts get: the machine's repositories, home directories and virtualenvs are
world-readable and hold every task's grader and reference solutions (also in git objects).
So the sandbox sees ``/usr`` and ``/etc`` read-only (plus the merged-/usr links), a private
``/dev``, ``/proc`` of its own PID
namespace, an empty ``/run``, its workspace read-write at ``/workspace`` (the cwd) and a
scratch ``/tmp``, both sized tmpfs so the agent cannot fill the machine's disk. The task
folder, the data root of all runs and the run state are hidden even where they would lie
under a visible tree.

The network namespace is the dev cluster's client namespace (the dev hosts and nothing
else) or, without dev hosts, an empty one of its own. The workstation claims a run id and
records itself in ``STATE_DIR`` before it creates anything; its cgroup
``infragym/<run>/ws``, its mounts under ``DATA_ROOT/<run>`` and its namespace
``ig-<run>-ws`` are exactly what ``infragym cleanup`` sweeps after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .._errors import ConfigError, ResourceError
from . import _state
from ._agent_sandbox import WORKSPACE, AgentSandbox, ExecResult, OutputCapture, feed, kill_tree
from ._cgroup import PARENT, HostCgroup, Limits, remove_run_tree
from ._host import HOST_PATH
from ._identity import USER_NAME, Identity, identity_of
from ._launch import Launch
from ._lifecycle import Lifecycle
from ._netns import enter_netns, netns_path, run_in_netns
from ._pty import PtyProcess, make_controlling_terminal, open_pty
from ._sys import ip_batch, mount_tmpfs, mounts_under, umount
from ._tree import remove_tree
from ._view import system_view

__all__ = ["DEFAULT_LIMITS", "Workstation"]

HOSTNAME = "workstation"
NAME = "ws"
DEFAULT_LIMITS = Limits(pids=256, memory_bytes=1 << 30, cpu=1.0)
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


class Workstation(Lifecycle, AgentSandbox):
    """One episode's sandbox. ``netns`` is an existing namespace to live in (the dev
    cluster's client namespace); without it the workstation makes an empty one.

    ``starter`` is copied into the workspace at start; ``hosts`` (name to address) becomes
    the sandbox's ``/etc/hosts``; ``hidden`` are paths (the task folder) the sandbox must
    never see; ``env`` is added to every command's environment.

    The agent runs as the uid and gid of the workstation's run, or as ``identity``, that
    of the dev cluster whose namespace it lives in (:attr:`Cluster.identity`): the dev
    hosts serve the live workspace at ``/srv/app``, so they must read what the agent
    keeps to itself there. A borrowed identity is the lender's: close the workstation
    before (or with) the cluster, as the env does.
    """

    KIND = "workstation"

    def __init__(
        self,
        *,
        netns: str | None = None,
        starter: str | Path | None = None,
        hosts: Mapping[str, str] | None = None,
        hidden: Sequence[str | Path] = (),
        limits: Limits = DEFAULT_LIMITS,
        workspace_bytes: int = 64 << 20,
        scratch_bytes: int = 256 << 20,
        env: Mapping[str, str] | None = None,
        identity: Identity | None = None,
    ) -> None:
        if not isinstance(limits, Limits):
            raise ConfigError(f"limits must be a Limits, not {limits!r}")
        for what, size in (("workspace_bytes", workspace_bytes), ("scratch_bytes", scratch_bytes)):
            if not isinstance(size, int) or isinstance(size, bool) or size < 1 << 20:
                raise ConfigError(f"{what} must be a whole number of bytes >= 1 MiB, not {size!r}")
        self.starter = Path(starter) if starter is not None else None
        if self.starter is not None and not self.starter.is_dir():
            raise ConfigError(f"starter workspace {self.starter} is not a directory")
        self.limits = limits
        self.workspace_bytes = workspace_bytes
        self.scratch_bytes = scratch_bytes
        self.hosts = dict(hosts or {})
        self.hidden = [Path(p) for p in hidden]
        self._own_netns = netns is None
        self._given_netns = netns
        self._extra_env = dict(env or {})
        if identity is not None and not isinstance(identity, Identity):
            raise ConfigError(f"identity must be an Identity (Cluster.identity), not {identity!r}")
        self._given_identity = identity
        self.identity: Identity | None = None
        self._set_run_id(_state.new_run_id())
        self._record: _state.RunRecord | None = None
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        self._inflight = 0
        self._bwrap = ""
        self._options: list[str] = []
        self._privdrop: list[str] = []
        self._hosts_text = b""
        self._procs_files: list[str] = []

    def _set_run_id(self, run_id: str) -> None:
        self.run_id = run_id
        self.root = _state.DATA_ROOT / run_id
        self.workspace = self.root / "workspace"
        self.tmp = self.root / "tmp"
        self.cgroup = HostCgroup(f"{PARENT}/{run_id}/{NAME}")
        self.netns = self._given_netns or _state.netns_name(run_id, NAME)

    def __repr__(self) -> str:
        return f"Workstation({self.run_id}, netns={self.netns})"

    # -- lifecycle -----------------------------------------------------------------------

    def _claim(self) -> None:
        self._record = _state.claim_record(self.run_id, [NAME])
        self._set_run_id(self._record.run_id)

    def _build(self, bwrap: str, setpriv: str) -> None:
        ident = self.identity = self._given_identity or identity_of(self.run_id)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.cgroup.create(self.limits)
        swap = self.cgroup.dirs["memory"] / "memory.memsw.limit_in_bytes"
        if swap.exists():  # no swapping past the memory limit where swap is accounted
            swap.write_text(str(self.limits.memory_bytes))
        for d, size, mode, uid, gid in (
            (self.workspace, self.workspace_bytes, 0o755, ident.uid, ident.gid),
            (self.tmp, self.scratch_bytes, 0o1777, 0, 0),
        ):
            d.mkdir()
            mount_tmpfs(d, size, mode=mode, uid=uid, gid=gid)
        # copied into each sandbox (--ro-bind-data): mountinfo names no path of the run
        self._hosts_text = (
            "127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in self.hosts.items())
        ).encode()
        if self.starter is not None:
            _copy_owned(self.starter, self.workspace, ident)
        if self._own_netns:
            ip_batch([f"netns add {self.netns}"])
            run_in_netns(self.netns, _configure_own_netns)
        elif not os.path.exists(netns_path(self.netns)):
            raise ResourceError(f"network namespace {self.netns!r} does not exist")
        self._bwrap = bwrap
        self._options, self._privdrop = self._launch_parts(setpriv)
        self._procs_files = self.cgroup.procs_files()

    def _teardown(self) -> None:
        # each step runs whatever the ones before raised: nothing the agent left in its
        # workspace (a tree too deep to recurse into, say) may leak the rest
        errors: list[str] = []

        def step(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
            except Exception as exc:
                errors.append(f"{what}: {type(exc).__name__}: {exc}")

        step("cgroup", self.cgroup.remove)
        step("cgroups", lambda: remove_run_tree(self.run_id))
        step("mounts", lambda: [umount(mp) for mp in mounts_under(str(self.root))])
        step("directories", lambda: remove_tree(self.root))
        if self._own_netns and os.path.exists(netns_path(self.netns)):
            step("network namespace", lambda: ip_batch([f"netns del {self.netns}"], check=False))
        if self._record is not None and not errors:  # else it stays for `infragym cleanup`
            step("run record", self._record.remove)
        if errors:
            raise ResourceError(
                f"workstation {self.run_id} was not fully removed ({'; '.join(errors)}); "
                "run `infragym cleanup`"
            )

    @property
    def closed(self) -> bool:
        return self._closed

    def kill_all(self) -> int:
        """SIGKILL every process of the workstation; returns how many there were."""
        if not self._started or self._closed:
            return 0
        return self.cgroup.kill_all()

    def pids(self) -> list[int]:
        """Every process of the workstation (in the machine's PID namespace)."""
        return self.cgroup.pids()

    # -- operations ----------------------------------------------------------------------

    async def exec(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        max_output: int = 16384,
        input: bytes | None = None,
    ) -> ExecResult:
        """Run ``argv`` in the sandbox (cwd ``/workspace``); on timeout kill its whole tree."""
        if not self._started or self._closed:
            raise ResourceError(f"workstation {self.run_id} is not running")
        if not argv or any("\0" in a for a in argv):
            raise ConfigError("argv must be non-empty and contain no NUL characters")
        t0 = time.monotonic()
        launch = self._launch(argv)
        start = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *launch.argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
                preexec_fn=self._preexec,
                close_fds=True,
                pass_fds=launch.fds,
            )
        )
        try:
            try:
                proc = await asyncio.shield(start)
            except asyncio.CancelledError:
                # asyncio's own undoing of a cancelled start kills the monitor alone and
                # then waits for the command's output to end, which the namespace's init,
                # left alive, holds open: a Ctrl-C would hang for as long as the command
                # runs. Let the start finish and kill the whole tree instead.
                with contextlib.suppress(Exception):
                    await kill_tree(await start, None)
                raise
        except (OSError, ValueError) as exc:
            raise ResourceError(
                f"cannot start a command in workstation {self.run_id}: {exc}"
            ) from exc
        finally:
            launch.close()
        self._inflight += 1
        cap = OutputCapture(max_output)
        feeder = asyncio.ensure_future(feed(proc, input)) if input is not None else None
        timed_out = False
        try:
            assert proc.stdout is not None
            try:
                async with asyncio.timeout(timeout):
                    while chunk := await proc.stdout.read(1 << 16):
                        cap.add(chunk)
                    await proc.wait()
            except TimeoutError:
                timed_out = True
                await kill_tree(proc, cap)
        except BaseException:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await kill_tree(proc, None)
            raise
        finally:
            if feeder is not None:
                feeder.cancel()
            self._inflight -= 1
            if self._inflight == 0 and not self._closed:
                # nothing of a finished command may linger (its PID namespace is gone
                # already; this is the belt to those braces)
                self.cgroup.kill_all()
        return cap.result(None if timed_out else proc.returncode, timed_out, time.monotonic() - t0)

    def spawn_interactive(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> PtyProcess:
        """Start ``argv`` in the sandbox on a new pseudo-terminal, for a person at a
        terminal (``infragym play``): launched as :meth:`exec` launches commands, with
        ``env`` (e.g. ``TERM``) added to its environment. The pty is its controlling
        terminal, so a shell there has job control. While it runs, finished commands do
        not sweep the workstation's processes; ``close()`` it to end it."""
        if not self._started or self._closed:
            raise ResourceError(f"workstation {self.run_id} is not running")
        if not argv or any("\0" in a for a in argv):
            raise ConfigError("argv must be non-empty and contain no NUL characters")
        full_env = {**self._env(), **(env or {})}

        def preexec() -> None:
            self._preexec()
            make_controlling_terminal()

        launch = self._launch(argv)
        try:
            master, child = open_pty()
        except BaseException:
            launch.close()
            raise
        try:
            proc = subprocess.Popen(
                launch.argv,
                stdin=child,
                stdout=child,
                stderr=child,
                env=full_env,
                start_new_session=True,
                preexec_fn=preexec,
                close_fds=True,
                pass_fds=launch.fds,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            os.close(master)
            raise ResourceError(
                f"cannot start a terminal in workstation {self.run_id}: {exc}"
            ) from exc
        finally:
            launch.close()
            os.close(child)
        self._inflight += 1

        def done() -> None:
            self._inflight -= 1

        return PtyProcess(proc, master, done)

    # -- processes -----------------------------------------------------------------------

    def _launch(self, argv: Sequence[str]) -> Launch:
        assert self.identity is not None
        files = [(self._hosts_text, "/etc/hosts"), *self.identity.view_files()]
        return Launch.prepare(self._bwrap, self._options, self._privdrop, argv, files)

    def _launch_parts(self, setpriv: str) -> tuple[list[str], list[str]]:
        options = [
            *system_view(self.hidden),
            "--dev", "/dev",
            "--perms", "1777", "--tmpfs", "/dev/shm",
            "--proc", "/proc",
            "--tmpfs", "/run",
            "--bind", str(self.workspace), WORKSPACE,
            "--bind", str(self.tmp), "/tmp",
            "--unshare-pid", "--unshare-uts", "--unshare-ipc", "--unshare-cgroup-try",
            "--hostname", HOSTNAME,
            "--chdir", WORKSPACE,
        ]  # fmt: skip
        assert self.identity is not None
        privdrop = [
            setpriv,
            "--reuid", str(self.identity.uid), "--regid", str(self.identity.gid),
            "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
            "--",
        ]  # fmt: skip
        return options, privdrop

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": HOST_PATH,
            "LANG": "C.UTF-8",
            "HOME": "/tmp",
            "USER": USER_NAME,
            "TERM": "dumb",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
        }
        env.update(self._extra_env)
        return env

    def _preexec(self) -> None:
        pid = str(os.getpid()).encode()
        for f in self._procs_files:
            fd = os.open(f, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        enter_netns(self.netns)


def _copy_owned(src: Path, dest: Path, ident: Identity) -> None:
    """Copy the starter files into the workspace, owned by the agent's user."""
    shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), ident.uid, ident.gid, follow_symlinks=False)
    os.chown(dest, ident.uid, ident.gid)


def _configure_own_netns() -> None:
    """Loopback up; ports below 1024 bind without capabilities, as on hosts."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH22x", b"lo", 0)
        flags: int = struct.unpack("16sH22x", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))
    finally:
        s.close()
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", "w") as fh:
        fh.write("0")
