"""One ``infragym serve`` on each episode node of a Ray cluster (:func:`serve_on_ray`).

A trainer that speaks OpenEnv (or MCP) to its environments gets one server per machine
built for episodes, without logging into each: a Ray actor on every node that advertises
:data:`~infragym.runner.EPISODE_RESOURCE` starts ``infragym serve`` there as a subprocess
on a free port, waits for its ``/health``, and hands back its URL. The servers serve as
many sessions as the node has episode slots (unless told otherwise). ``stop()`` sends each
server SIGTERM (its sessions end, its episodes are removed), waits for it, then ends the
actors; a server whose actor dies gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``, through a
keeper process between them, since Ray SIGKILLs a dead worker's children).

The servers need openenv where they run: ``pip install 'infragym[openenv,ray]'`` on every
node puts both in one environment; ``python=`` names another interpreter for the server
(one whose environment holds ``infragym[openenv]``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any

from .._errors import ConfigError
from ._ray import EPISODE_RESOURCE, _episode_nodes, _ray

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 90.0  # SIGTERM ends the episodes first (teardown of sandboxes, hosts)
PR_SET_PDEATHSIG = 1

# The actor's child, the server's parent: Ray SIGKILLs a dying worker's children, which
# would leave the server's episodes behind; its grandchildren it leaves, so the server
# gets SIGTERM (PR_SET_PDEATHSIG) when this keeper dies, and ends its episodes.
KEEPER = """
import ctypes, signal, subprocess, sys
def pdeathsig():
    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)
server = subprocess.Popen(sys.argv[1:], preexec_fn=pdeathsig)
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda s, _: server.send_signal(s))
sys.exit(server.wait())
"""


class RayServers(list[str]):
    """The servers' URLs, one per episode node; :meth:`stop` ends them all (so does
    leaving a ``with`` block)."""

    def __init__(self, urls: Sequence[str], actors: Sequence[Any], owned: bool) -> None:
        super().__init__(urls)
        self._actors = list(actors)
        self._owned = owned  # this call connected to the cluster: disconnect at stop

    def stop(self) -> None:
        """End every server (their episodes removed) and its actor; idempotent."""
        ray = _ray()
        actors, self._actors = self._actors, []
        try:
            if actors:
                with contextlib.suppress(Exception):  # a dead node's actor: nothing to stop
                    ray.get([a.stop.remote() for a in actors], timeout=STOP_TIMEOUT_S + 30)
                for a in actors:
                    with contextlib.suppress(Exception):
                        ray.kill(a)
        finally:
            if self._owned and ray.is_initialized():
                self._owned = False
                ray.shutdown()

    def __enter__(self) -> RayServers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_on_ray(
    address: str | None = None,
    *,
    tasks: Sequence[str] | None = None,
    port: int = 0,
    max_sessions: int | None = None,
    session_timeout: float = 300.0,
    host: str | None = None,
    python: str | None = None,
) -> RayServers:
    """Start one ``infragym serve`` on every node of the Ray cluster that may host episodes
    and return their URLs (a list, with ``stop()``).

    ``address``: the cluster (``auto``: the one ``ray start`` made on this machine); by
    default the one this process is connected to, else ``$RAY_ADDRESS``, else ``auto``.
    ``tasks``: names or folders to serve (default every installed task; a folder must be
    at that path on every node). ``port``: the same port on every node, or 0 for a free
    one on each. ``max_sessions``: per server; by default the node's episode slots.
    ``host``: the address the servers listen on, by default each node's own IP (the
    servers have no authentication: only where every client is trusted). ``python``: the
    interpreter that runs the servers, by default the one of Ray's workers.
    """
    if port < 0 or port > 65535:
        raise ConfigError(f"port must be 0 (a free one) or a TCP port, not {port}")
    if max_sessions is not None and max_sessions < 1:
        raise ConfigError(f"max_sessions must be at least 1, not {max_sessions}")
    if not session_timeout > 0:
        raise ConfigError(f"session_timeout must be positive seconds, not {session_timeout}")
    ray = _ray()
    owned = not ray.is_initialized()
    if owned:
        where = address or os.environ.get("RAY_ADDRESS") or "auto"
        try:
            ray.init(address=where, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {where}: {exc}") from None
    servers = RayServers([], [], owned)
    try:
        nodes = _episode_nodes(ray)
        if not nodes:
            raise ConfigError(
                f"no live node of the Ray cluster advertises the {EPISODE_RESOURCE} resource, "
                "so none may host episodes: start each such node with ray start ... "
                f'--resources="$(infragym node-resources)"'
            )
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        cls = ray.remote(num_cpus=0, max_restarts=0)(NodeServer)
        actors = [
            cls.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=nid, soft=False)
            ).remote()
            for nid in nodes
        ]
        servers._actors = actors
        argv = {
            "tasks": list(tasks or []),
            "port": port,
            "session_timeout": session_timeout,
            "host": host,
            "python": python,
        }
        starts = [
            a.start.remote(**argv, max_sessions=max_sessions or max(1, int(slots)))
            for a, slots in zip(actors, nodes.values(), strict=True)
        ]
        try:
            urls = ray.get(starts, timeout=START_TIMEOUT_S + 60)
        except ray.exceptions.RayTaskError as exc:
            raise ConfigError(f"an infragym serve did not start: {exc.cause}") from None
        servers.extend(urls)
    except BaseException:
        servers.stop()
        raise
    return servers


class NodeServer:
    """The Ray actor on one node: its ``infragym serve`` subprocess."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None  # unlinked from the start: nothing left behind

    def start(
        self,
        *,
        tasks: list[str],
        port: int,
        max_sessions: int,
        session_timeout: float,
        host: str | None,
        python: str | None,
    ) -> str:
        ray = _ray()
        host = host or ray.util.get_node_ip_address()
        port = port or _free_port(host)
        py = python or sys.executable
        cmd = [py, "-c", KEEPER, py, "-m", "infragym.cli.main", "serve", "--host", host,
               "--port", str(port), "--max-sessions", str(max_sessions),
               "--session-timeout", f"{session_timeout:g}"]  # fmt: skip
        if tasks:
            cmd += ["--tasks", *tasks]
        self.log = tempfile.TemporaryFile(prefix=f"infragym-serve-{port}-")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        url = f"http://{host}:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return url
            except OSError:
                time.sleep(0.2)
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"infragym serve on {host}:{port} did not answer /health: {tail}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the server's process before exec: SIGTERM when the actor's process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
