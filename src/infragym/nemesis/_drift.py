"""A colleague who drifts hosts away from their declared configuration.

Configuration-management tasks are graded by what happens after someone changes a host
behind the reconciler's back: an edited or deleted file, a changed mode, a killed
service, an unwanted listener, a stale configuration loaded by hand. :func:`drift_schedule`
draws a seeded, replayable plan of such drifts (every kind, the hosts in turn);
:class:`Colleague` performs one on a live cluster, as the host's own user through the
platform (``host.run``, signals to the host's processes), waits until it shows (the file
is changed, the service gone, the listener listening), and records it in the history as a
``drift`` fault event (apply only: what heals it is the system under test).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .._errors import ConfigError
from ..history import Clock, FaultAction, FaultEvent, History
from ..sandbox import Cluster, Host

DRIFT_KINDS = (
    "edit-file",
    "chmod-file",
    "delete-file",
    "kill-service",
    "start-listener",
    "stale-config",
)
DRIFT_FAULT = "drift"
EDIT_MARK = b"\n# changed by hand by a colleague\n"
LISTENER = (
    "import socket,sys,time\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(8)\n"
    "time.sleep(3600)\n"
)
SHOW_S = 3.0  # a drift must show within this (the listener listens, the service is gone)


@dataclass(frozen=True)
class Drift:
    """One planned drift: ``kind`` on ``host`` at ``at`` seconds; ``pick`` chooses among
    the colleague's candidates (which file, which port) when it is applied."""

    at: float
    kind: str
    host: str
    pick: int
    label: str


@dataclass(frozen=True)
class DriftTargets:
    """What a colleague may touch on every host.

    - ``files``: managed paths in the host's view (``/srv/etc/...``), edited, chmodded or
      deleted; ``files_of(host)`` may give them per host (the current spec's).
    - ``service``: the process title prefix of the managed service's processes
      (``nginx:``), all killed by ``kill-service``.
    - ``ports``: ports nothing may listen on; ``start-listener`` listens on one.
    - ``stale``: ``(path, content)`` written by ``stale-config`` before ``reload`` (a
      command run on the host) makes the service load it.
    """

    files: Callable[[str], Sequence[str]]
    service: str
    ports: Sequence[int]
    stale: Callable[[str], tuple[str, bytes]]
    reload: Sequence[str]


def drift_schedule(
    seed: int,
    hosts: Sequence[str],
    *,
    count: int,
    start: float,
    gap: float,
    kinds: Sequence[str] = DRIFT_KINDS,
    salt: str = "",
) -> tuple[Drift, ...]:
    """``count`` drifts ``gap`` s apart from ``start``: every kind in turn (shuffled per
    round), the hosts in a shuffled round-robin so no host is drifted twice before every
    host once. Pure: the same arguments give the same plan."""
    unknown = sorted(set(kinds) - set(DRIFT_KINDS))
    if unknown or not kinds:
        raise ConfigError(f"unknown drift kinds {unknown or '(none)'}; known: {DRIFT_KINDS}")
    if not hosts or count < 1 or gap <= 0:
        raise ConfigError("a drift schedule needs hosts, count >= 1 and gap > 0")
    rng = random.Random(f"drift:{salt}:{seed}")
    order: list[str] = []
    plan: list[str] = []
    drifts = []
    for i in range(count):
        if not order:
            order = list(hosts)
            rng.shuffle(order)
        if not plan:
            plan = list(kinds)
            rng.shuffle(plan)
        kind = plan.pop()
        drifts.append(
            Drift(
                round(start + i * gap, 3),
                kind,
                order.pop(),
                rng.randrange(1 << 16),
                f"drift-{i}-{kind}",
            )
        )
    return tuple(drifts)


@dataclass
class Colleague:
    """Performs drifts on ``cluster`` and records them in ``history``."""

    cluster: Cluster
    history: History
    clock: Clock
    targets: DriftTargets
    applied: list[FaultEvent] = field(default_factory=list)
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def close(self) -> None:
        """End and reap the processes drifts started (listeners)."""
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait(5.0)
        self.children.clear()

    def apply(self, drift: Drift) -> FaultEvent:
        """Perform ``drift`` now (blocking until it shows) and record it at the time it
        began (a system under test may undo it before it shows, and its work then must
        not look unprompted); a drift that found nothing to act on, or did not show, is
        recorded with ``detail["skipped"]``; ``detail["done"]`` is when it ended."""
        host = self.cluster.host(drift.host)
        act = getattr(self, "_" + drift.kind.replace("-", "_"), None)
        if act is None:
            raise ConfigError(f"unknown drift kind {drift.kind!r}; known: {DRIFT_KINDS}")
        detail: dict[str, object] = {"kind": drift.kind}
        begun = self.clock.now()  # the event's time: what it changes may be undone at once
        try:
            detail.update(act(host, drift.pick))
        except Exception as exc:  # the host may be broken by the system under test
            detail["skipped"] = f"{type(exc).__name__}: {exc}"
        detail["done"] = round(self.clock.now(), 3)
        event = FaultEvent(begun, DRIFT_FAULT, FaultAction.APPLY, drift.label, (host.name,), detail)
        self.history.record_fault(event)
        self.applied.append(event)
        return event

    # -- the drifts: each returns what it did -------------------------------------------

    def _file(self, host: Host, pick: int) -> str:
        files = list(self.targets.files(host.name))
        if not files:
            raise LookupError("no managed files")
        return files[pick % len(files)]

    def _sh(self, host: Host, script: str, *args: str, stdin: bytes | None = None) -> None:
        done = host.run(["/bin/sh", "-c", script, "drift", *args], timeout=10.0, input=stdin)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode("utf-8", "replace").strip()[-200:])

    def _edit_file(self, host: Host, pick: int) -> dict[str, object]:
        path = self._file(host, pick)
        self._sh(host, 'cat >> "$1"', path, stdin=EDIT_MARK)
        return {"path": path}

    def _chmod_file(self, host: Host, pick: int) -> dict[str, object]:
        path = self._file(host, pick)
        mode = "0666" if pick % 2 else "0604"
        self._sh(host, 'chmod "$2" "$1"', path, mode)
        return {"path": path, "mode": mode}

    def _delete_file(self, host: Host, pick: int) -> dict[str, object]:
        path = self._file(host, pick)
        self._sh(host, 'rm -f -- "$1"', path)
        return {"path": path}

    def _kill_service(self, host: Host, pick: int) -> dict[str, object]:
        pids = service_pids(host, self.targets.service)
        if not pids:
            raise LookupError(f"no {self.targets.service!r} process runs")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _until(lambda: not set(service_pids(host, self.targets.service)) & set(pids))
        return {"killed": len(pids)}

    def _start_listener(self, host: Host, pick: int) -> dict[str, object]:
        ports = list(self.targets.ports)
        if not ports:
            raise LookupError("no forbidden ports")
        port = ports[pick % len(ports)]
        argv = ["/usr/bin/python3", "-I", "-c", LISTENER, str(port)]  # -I: no host hooks
        self.children.append(spawn_beside(host, argv))
        _until(lambda: port in listening_ports(host))
        return {"port": port}

    def _stale_config(self, host: Host, pick: int) -> dict[str, object]:
        path, content = self.targets.stale(host.name)
        self._sh(host, 'cat > "$1"', path, stdin=content)
        reload = host.run(list(self.targets.reload), timeout=10.0)
        return {"path": path, "reloaded": reload.returncode == 0}


def spawn_beside(host: Host, argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the host's user in the PID, mount and network namespaces of its
    busiest process tree (the service's), so the service can see and end it, as it
    would see a process a colleague started by hand; it joins the host's cgroup, so the
    host's teardown ends it."""
    own = os.readlink("/proc/self/ns/pid")
    trees: dict[str, list[int]] = {}
    for pid in host.pids():
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            continue
        if ns != own:
            trees.setdefault(ns, []).append(pid)
    if not trees:
        raise LookupError("no process runs on the host")
    biggest = max(trees, key=lambda ns: len(trees[ns]))
    leader = min(trees[biggest])
    ident = host.identity
    cgroups = host.cgroup.procs_files()

    def join() -> None:
        for f in cgroups:
            with open(f, "w") as fh:
                fh.write(str(os.getpid()))

    return subprocess.Popen(
        ["nsenter", "-t", str(leader), "--pid", "--mount", "--net", "--",
         "setpriv", "--reuid", str(ident.uid), "--regid", str(ident.gid), "--clear-groups",
         "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *argv],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=join, close_fds=True,
    )  # fmt: skip


def _until(cond: Callable[[], bool], timeout: float = SHOW_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the drift did not show within {timeout:g} s")
        time.sleep(0.02)


def process_title(pid: int) -> str:
    """A process's command line as ``ps`` shows it ('' when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read(512).replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def service_pids(host: Host, prefix: str) -> list[int]:
    """The host's processes whose title starts with ``prefix`` (``nginx:``)."""
    return [p for p in host.pids() if process_title(p).startswith(prefix)]


def _listeners(host: Host, via: int | None = None) -> dict[int, set[str]] | None:
    """Per TCP port something listens on in ``host``'s network namespace, the sockets'
    inodes (read through one of its processes' ``/proc/<pid>/net``, ``via`` if given, so
    nothing runs on the host); None when no process of the host could be read."""
    for pid in [via] if via is not None else host.pids():
        out: dict[int, set[str]] = {}
        try:
            for table in ("tcp", "tcp6"):
                with open(f"/proc/{pid}/net/{table}") as fh:
                    next(fh, None)
                    for line in fh:
                        cols = line.split()
                        if len(cols) > 9 and cols[3] == "0A":
                            port = int(cols[1].rsplit(":", 1)[1], 16)
                            out.setdefault(port, set()).add(cols[9])
        except OSError:
            continue
        return out
    return None


def listening_ports(host: Host) -> set[int]:
    """TCP ports something listens on in ``host``'s network namespace."""
    return set(_listeners(host) or {})


def listener_pids(host: Host, port: int, via: int | None = None) -> set[int]:
    """The host's processes holding a socket that listens on TCP ``port`` (its inodes
    matched against every process's open descriptors, as root: nothing runs on the host
    and nothing the host's processes say is believed). ``via``: a process known to be in
    the host's network namespace to read its table through (one caught joining the host
    may still see the machine's)."""
    inodes = (_listeners(host, via) or {}).get(port, set())
    want = {f"socket:[{i}]" for i in inodes}
    out = set()
    for pid in host.pids() if want else []:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in want:
                    out.add(pid)
                    break
            except OSError:
                continue
    return out
