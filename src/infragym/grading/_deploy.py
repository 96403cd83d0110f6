"""Deploying an agent's system by a task's contract: the same start command as a service
on every host of a fresh cluster, each with its own environment, then waiting for the
port. What a grader reports when a system does not come up says why, in one line per host,
so an author (and a trajectory reader) sees a crash at start-up, not only "no answer"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .._errors import InfraGymError
from ..sandbox import Cluster, Host, HostProcess

__all__ = ["Deployment", "deploy", "wait_all_listening", "wait_listening"]


def wait_listening(host: Host, proc: HostProcess, port: int, timeout: float) -> str | None:
    """None once ``host`` listens on ``port``; else why not. Fails fast when ``proc`` (the
    start command) exited, quoting the last lines it printed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            host.wait_port(port, timeout=0.2)
            return None
        except InfraGymError:
            pass
        if not proc.alive():
            tail = proc.output(2000).strip().splitlines()[-5:]
            command = " ".join(proc.spec.argv)
            return (
                f"{host.name}: {command} exited with status {proc.returncode} without "
                f"listening on port {port}; its last output: {' | '.join(tail) or '(none)'}"
            )
        if time.monotonic() >= deadline:
            return f"{host.name}: nothing listens on port {port} after {timeout:.0f} s"


async def wait_all_listening(cluster: Cluster, port: int, timeout: float) -> list[str]:
    """Why each host that does not listen on ``port`` within ``timeout`` does not (empty
    when all do); the hosts are waited for at once."""

    async def one(h: Host) -> str | None:
        try:
            await asyncio.to_thread(h.wait_port, port, timeout)
            return None
        except InfraGymError as exc:
            return f"{h.name}: {exc}"

    return [p for p in await asyncio.gather(*(one(h) for h in cluster.hosts)) if p]


@dataclass(frozen=True)
class Deployment:
    """The started services by host name, each host's URL, and why hosts did not come up
    (empty when every one listens)."""

    processes: Mapping[str, HostProcess]
    urls: Mapping[str, str]
    problems: Sequence[str]


async def deploy(
    cluster: Cluster,
    command: Sequence[str],
    env: Callable[[Host], Mapping[str, str]],
    *,
    port: int,
    timeout: float,
    name: str = "app",
    hosts: Sequence[str] | None = None,
) -> Deployment:
    """Start ``command`` as a restartable service named ``name`` on every host (or those
    named in ``hosts``) with ``env(host)`` as its contract, and wait up to ``timeout`` for
    each to listen on ``port``."""
    targets = cluster.hosts if hosts is None else [cluster.host(n) for n in hosts]
    procs = {h.name: h.spawn(name, list(command), env=dict(env(h)), service=True) for h in targets}
    waits = (asyncio.to_thread(wait_listening, h, procs[h.name], port, timeout) for h in targets)
    problems = [p for p in await asyncio.gather(*waits) if p]
    urls = {h.name: f"http://{h.address}:{port}" for h in targets}
    return Deployment(procs, urls, problems)
