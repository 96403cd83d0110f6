"""The operator's tools of a live episode (``mode = "operate"``): ``host_bash`` on the
production hosts, ``service`` (status, start, stop, restart of the deployed service, as
``systemctl`` would), ``logs``, ``metrics`` (the on-call dashboard, from the recorded
history), ``end_phase`` and ``submit``.

A command of ``host_bash`` runs as the service's own user, in its own process namespace:
it cannot see or signal the service's processes, which is what ``service`` is for.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import InfraGymError
from ..grading import host_metrics, service_level
from ..history import Clock, History
from ..sandbox import Cluster, Host
from ..tasks import Limits as TaskLimits
from ..tasks import OperateSpec
from ._devhosts import host_command, host_start
from ._output import safe_text
from ._tools import COMMAND_DOC, _obj, render_exec
from ._types import EnvOptions, ToolError, ToolSpec

__all__ = ["LOG_NAME_RE", "live_tool_specs", "render_metrics", "service_action"]

LOG_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
SERVICE_ACTIONS = ("status", "start", "stop", "restart")
MAX_WINDOW_MIN = 60.0


BACKGROUND = "bg"  # the operator's background processes: bg1, bg2, ...


def live_tool_specs(
    hosts: Sequence[str], op: OperateSpec, limits: TaskLimits, options: EnvOptions
) -> tuple[ToolSpec, ...]:
    """The tools of a live episode on production ``hosts``."""
    t = f"{limits.command_timeout_s:g}"
    host = {
        "type": "string", "enum": list(hosts),
        "description": "The production host (a host a ticket adds exists once it opens).",
    }  # fmt: skip
    timeout = {
        "type": "number", "exclusiveMinimum": 0,
        "description": f"Seconds before the command and everything it started are killed "
        f"(default and maximum {t}).",
    }  # fmt: skip
    return (
        ToolSpec(
            "host_bash",
            "Run a bash command on a production host, as the service's user "
            f"({op.service}), in /srv/app (the deployed system, read-only). Each host has its "
            "own /srv/data, /srv/logs, /srv/etc and /tmp (yours to change) and reaches the "
            "others by name; the environment holds the deployment contract's variables. "
            f"stdout and stderr come back with the exit code (past "
            f"{options.max_output_bytes:,} bytes only the start and end). The command runs in "
            "its own process namespace: it cannot see or signal the service (use the "
            "service tool); with background=true it keeps running until the current ticket "
            "closes (it is stopped then, before the ticket is checked: what must keep "
            "running belongs in the service), its output in /srv/logs/<name>.log. "
            "Changes are live: nothing is rebuilt between phases.",
            _obj({"host": host, "command": {"type": "string", "description": COMMAND_DOC},
                  "timeout": timeout,
                  "background": {"type": "boolean", "default": False,
                                 "description": "Start a long-running process."}},
                 ["host", "command"]),
        ),
        ToolSpec(
            "service",
            f"Manage the deployed service ({op.service}) on a host, as systemctl would: "
            "status, start, stop or restart (a restart stops it with SIGTERM, then SIGKILL "
            "after 5 s, and starts it again with the deployment's command and environment).",
            _obj({"host": host,
                  "action": {"type": "string", "enum": list(SERVICE_ACTIONS),
                             "description": "What to do."}},
                 ["host", "action"]),
        ),
        ToolSpec(
            "logs",
            f"The end of a log of a host's /srv/logs (default: the service's, {op.service}); "
            "an unknown name lists the logs there.",
            _obj({"host": host,
                  "name": {"type": "string", "default": op.service,
                           "description": "The log's name, without .log."},
                  "bytes": {"type": "integer", "exclusiveMinimum": 0, "default": 4000,
                            "description": f"How much of its end (at most "
                            f"{options.max_output_bytes:,})."}},
                 ["host"]),
        ),
        ToolSpec(
            "metrics",
            "The on-call dashboard: requests the clients sent to each host over the last "
            "minutes, how many were answered, how many slower than "
            f"{op.latency_ms:g} ms, latency percentiles and the last error; and the "
            f"service's availability against its objective ({op.slo:.2%}).",
            _obj({"minutes": {"type": "number", "exclusiveMinimum": 0, "default": 5,
                              "description": f"The window (at most {MAX_WINDOW_MIN:g})."}}),
        ),
        ToolSpec(
            "end_phase",
            "Say the current ticket is done, with a summary of what you did and found. The "
            "system is then checked as it stands, and the next ticket (if any) opens.",
            _obj({"summary": {"type": "string",
                              "description": "What you did, found or answer."}},
                 ["summary"]),
        ),
        ToolSpec(
            "submit",
            "End the shift now: the current ticket is checked as the system stands, tickets "
            "not yet opened score nothing, and the whole episode is graded.",
            _obj({}),
        ),
    )  # fmt: skip


def _service_process(host: Host, name: str):  # type: ignore[no-untyped-def]
    host.reap()
    return next((p for p in host.processes if p.name == name), None)


def service_action(host: Host, name: str, action: str, port: int, listen_s: float) -> str:
    """Do ``action`` to the service ``name`` on ``host`` (blocking); what happened."""
    spec = host.services.get(name)
    if spec is None:
        raise ToolError(f"service: there is no service {name!r} on {host.name}")
    proc = _service_process(host, name)
    try:
        if action in ("stop", "restart") and proc is not None:
            code = proc.stop(5.0)
            proc = None
            if action == "stop":
                return f"{name} on {host.name} stopped (exit status {code})"
        if action == "stop":
            return f"{name} on {host.name} was not running"
        if action in ("start", "restart"):
            if proc is not None:
                return f"{name} on {host.name} is already running (pid {proc.pid})"
            proc = host.spawn(name, spec.argv, env=spec.env, cwd=spec.cwd, service=True)
            try:
                host.wait_port(port, timeout=listen_s)
                return f"{name} on {host.name} started and listens on port {port}"
            except InfraGymError:
                state = "is running" if proc.alive() else f"exited ({proc.returncode})"
                return (
                    f"{name} on {host.name} started but does not listen on port {port} after "
                    f"{listen_s:g} s; it {state}; the end of its log:\n{host.log(name, 1500)}"
                )
    except InfraGymError as exc:  # a paused host, say: the operator's problem to see
        return f"service {action} on {host.name} failed: {exc}"
    if proc is None:
        return f"{name} on {host.name}: not running; the end of its log:\n{host.log(name, 1500)}"
    return f"{name} on {host.name}: running (pid {proc.pid})"


def render_metrics(
    history: History, clock: Clock, hosts: Sequence[str], op: OperateSpec, minutes: float
) -> str:
    """The dashboard text of the last ``minutes``."""
    now = clock.now()
    since = now - minutes * 60.0
    ops = [o for o in history.operations() if o.invoke >= since]
    lines = [
        f"last {minutes:g} min (up to now), clients at {op.rate:g} requests/s over all hosts",
        f"{'host':<8} {'requests':>8} {'ok':>6} {'ok %':>7} {'slow':>5} {'p50 ms':>8} "
        f"{'p99 ms':>8}  last error",
    ]
    for m in host_metrics(ops, hosts, op.latency_ms):
        pct = f"{100 * m.ok / m.total:.1f}" if m.total else "-"
        p50 = f"{m.p50_ms:.1f}" if m.p50_ms is not None else "-"
        p99 = f"{m.p99_ms:.1f}" if m.p99_ms is not None else "-"
        lines.append(
            f"{m.host:<8} {m.total:>8} {m.ok:>6} {pct:>7} {m.slow:>5} {p50:>8} {p99:>8}  "
            f"{safe_text((m.last_error or '-').encode())}"
        )
    sl = service_level(ops, op.slo, op.latency_ms, end=now)
    lines.append(
        f"service: {sl.total} requests judged, {sl.bad} bad (failed, unanswered or slower "
        f"than {op.latency_ms:g} ms): availability {sl.availability:.2%} against an "
        f"objective of {op.slo:.2%}"
    )
    return "\n".join(lines)


@dataclass
class LiveTools:
    """Runs the operator's tools against one live episode's production cluster."""

    cluster: Cluster
    op: OperateSpec
    limits: TaskLimits
    options: EnvOptions
    history: History
    clock: Clock
    env: dict[str, dict[str, str]]
    _background: int = 0

    def _host(self, args: dict[str, object]) -> Host:
        name = str(args["host"])
        if name not in self.cluster.names:
            raise ToolError(
                f"{name} is not in the cluster yet (its hosts now: {', '.join(self.cluster.names)})"
            )
        return self.cluster.host(name)

    async def host_bash(
        self, args: dict[str, object], timeout: float
    ) -> tuple[str, dict[str, object]]:
        host = self._host(args)
        env = self.env.get(host.name)
        if args.get("background"):
            self._background += 1
            name = f"{BACKGROUND}{self._background}"
            text = await host_start(host, name, str(args["command"]), env)
            return text.replace("until you submit", "until this ticket closes"), {}
        r = await host_command(
            host, str(args["command"]), timeout, self.options.max_output_bytes, env
        )
        info: dict[str, object] = {
            "exit_code": r.exit_code,
            "timed_out": r.timed_out,
            "output_bytes": r.total_bytes,
        }
        return render_exec(r, timeout), info

    def stop_background(self) -> int:
        """Stop every process ``host_bash`` started with background=true, and everything
        it started (its sandbox's whole process namespace; SIGKILL for what ignores
        SIGTERM): a ticket is closing (or the shift is over), and it is checked on the
        system as deployed: nothing of the operator's may stand in for the service or
        babysit it while the grader looks. On a host an incident paused nothing can be
        stopped now: that is recorded in the history's meta, never raised."""
        n = 0
        for host in self.cluster.hosts:
            host.reap()
            for p in list(host.processes):
                if re.fullmatch(rf"{BACKGROUND}\d+", p.name) and p.name not in host.services:
                    try:
                        p.kill_tree(1.0)
                        n += 1
                    except InfraGymError as exc:  # a paused host: its processes wait
                        self.history.meta.setdefault("background_left", []).append(
                            f"{host.name}/{p.name}: {exc}"
                        )
        return n

    async def service(self, args: dict[str, object]) -> str:
        host = self._host(args)
        return await asyncio.to_thread(
            service_action, host, self.op.service, str(args["action"]), self.op.port,
            self.op.listen_s,
        )  # fmt: skip

    def logs(self, args: dict[str, object]) -> str:
        host = self._host(args)
        name = str(args["name"])
        size = int(args["bytes"])  # type: ignore[call-overload]
        size = min(size, self.options.max_output_bytes)
        path = host.logs_dir / f"{name}.log"
        if not LOG_NAME_RE.match(name) or not path.is_file() or path.is_symlink():
            have = sorted(
                p.name[:-4] for p in host.logs_dir.iterdir()
                if p.name.endswith(".log") and p.is_file() and not p.is_symlink()
            )  # fmt: skip
            raise ToolError(
                f"logs: {host.name} has no log {name[:80]!r}; its logs: {', '.join(have) or 'none'}"
            )
        text = host.log(name, size)
        return text if text else f"({name}.log on {host.name} is empty)"

    def metrics(self, args: dict[str, object]) -> str:
        minutes = float(args["minutes"])  # type: ignore[arg-type]
        if minutes > MAX_WINDOW_MIN:
            raise ToolError(f"metrics: minutes must be at most {MAX_WINDOW_MIN:g}")
        return render_metrics(self.history, self.clock, self.cluster.names, self.op, minutes)
