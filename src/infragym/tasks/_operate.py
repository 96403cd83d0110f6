"""Live episodes: ``mode = "operate"``, ``[operate]`` and ``[[phases]]`` of ``task.toml``.

::

    mode = "operate"

    [operate]
    start = ["/bin/sh", "/srv/app/start.sh"]  # the inherited system's start command
    port = 8080                               # it must listen there on every host
    service = "app"                           # its service name (logs/<service>.log)
    probe = "/health"                         # the background workload GETs this
    workload = "probe"                        # or "kv": reads and writes of a key-value
    keys = 16                                 # API (GET/PUT /kv/<key>) on this many
    writes = 0.5                              # keys, this share of them writes
    rate = 10                                 # requests per second, spread over the hosts
    slo = 0.95                                # availability objective: budget = 1 - slo
    latency_ms = 500                          # slower answers count against the budget
    handover_s = 10                           # the clients keep going this long after
                                              # the last phase: a system left broken
                                              # spends the budget
    budget_window_s = 10                      # optional: each ticket's error budget is
                                              # 1 - slo of this many seconds of requests

    [operate.weights]                         # of the episode reward (normalised)
    phases = 0.6
    service = 0.3
    audit = 0.1

    [[phases]]
    name = "config"                           # grader.py's grade_config(ctx) grades it
    ticket = "tickets/config.md"              # what the agent is told when it opens
    max_steps = 20
    max_s = 600
    weight = 1.0
    faults = [{ kind = "crash", host = "any", at = [2, 5], params = { restart = false } }]

    [[phases]]
    name = "capacity"
    ticket = "tickets/capacity.md"
    add_hosts = { role = "kv", count = 2 }    # the platform adds them as the phase opens

The inherited system is the task's ``inherit/`` folder, deployed read-only at ``/srv/app``
of every production host; with ``inherit_base = "<task>:<tier>"`` in ``[operate]``, it is
that task's reference tier with ``inherit/`` laid over it (reuse a reference without
copying it). A fault's ``host`` is a host name or ``"any"`` (drawn from the
seed), ``at`` seconds after the phase opens (a number, or ``[lo, hi]`` drawn from the
seed), ``duration`` seconds (default 0: applied and healed at once, e.g. a crash whose
heal restarts nothing), ``params`` the nemesis kind's parameters.

``add_hosts`` grows the production cluster as the phase opens (before its ticket and
faults): ``count`` hosts of ``role`` (a role of ``[topology.roles]``; left out for a task
without roles), named after the role's prefix with the next numbers (``kv4``, ``kv5``),
built with the role's resources, the same ``/srv/app`` and the next addresses of the
subnet. Their contract environment is computed for the grown cluster (``{peers}``,
``{kv_names}`` list every host); the hosts already there keep the one they were deployed
with (a restart is not a redeploy: joining the new hosts is the operator's job). The
service is registered on them but not started unless ``start = true`` (then the phase
opens once it listens there). The background clients keep their targets (the hosts at
reset) unless ``clients = true``: then, once the phase is graded, they send to every host
of the grown cluster for the rest of the episode (the new hosts must serve by then).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AddHosts", "OperateSpec", "PhaseFault", "PhaseSpec", "parse_operate"]

PHASE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_PHASES = 32
MAX_RATE = 100.0  # requests per second: a steady, bounded load for hours
MAX_FAULTS_PER_PHASE = 16
MAX_ADDED = 15  # hosts one phase adds (a cluster has at most 16)
WEIGHT_KEYS = ("phases", "service", "audit")
WORKLOADS = ("probe", "kv")


NEW_NAMES = "new_names"  # a ticket's {{ new_names }}: the hosts its phase added


@dataclass(frozen=True)
class PhaseFault:
    """One fault of a phase's incident schedule (see the module doc)."""

    kind: str
    host: str = "any"
    at: tuple[float, float] = (0.0, 0.0)
    duration: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AddHosts:
    """``add_hosts`` of a phase: ``count`` hosts of ``role`` (None: a task without roles)
    added as it opens, their service started if ``start``, served by the clients after
    the phase if ``clients`` (see the module doc)."""

    count: int
    role: str | None = None
    start: bool = False
    clients: bool = False


@dataclass(frozen=True)
class PhaseSpec:
    """A phase: its ticket, limits, weight and incident schedule; graded by
    ``grade_<name>`` (dashes as underscores) of the task's grader.py."""

    name: str
    ticket: str
    max_steps: int = 50
    max_s: float = 1800.0
    weight: float = 1.0
    grade_s: float = 60.0
    faults: tuple[PhaseFault, ...] = ()
    add_hosts: AddHosts | None = None

    @property
    def grader(self) -> str:
        return "grade_" + self.name.replace("-", "_")


@dataclass(frozen=True)
class OperateSpec:
    """``[operate]`` and ``[[phases]]`` of a live task."""

    start: tuple[str, ...]
    port: int
    phases: tuple[PhaseSpec, ...]
    service: str = "app"
    probe: str = "/"
    rate: float = 10.0
    timeout_s: float = 1.0
    slo: float = 0.95
    latency_ms: float = 500.0
    listen_s: float = 10.0
    audit_s: float = 60.0
    handover_s: float = 10.0
    budget_window_s: float | None = None
    """The error budget of each ticket reached is ``1 - slo`` of the requests sent in this
    many seconds (at ``rate``), however long the ticket takes: a fixed number of bad
    requests, so idling buys no budget and a long outage spends it all (None: the budget
    is ``1 - slo`` of every request sent)."""
    weights: Mapping[str, float] = field(
        default_factory=lambda: {"phases": 0.6, "service": 0.3, "audit": 0.1}
    )
    workload: str = "probe"
    """``probe``: GETs of ``probe``; ``kv``: reads and writes of a key-value API (the
    clients stop before the audit, whose ``ctx.lost_writes()`` judges every acknowledged
    write)."""
    keys: int = 16
    writes: float = 0.5
    inherit_base: tuple[str, str] | None = None
    """``(task, tier)``: the inherited system is that task's reference ``tier`` with the
    task's ``inherit/`` laid over it (``inherit_base = "kv-replicated:robust"``)."""


def _number(
    table: Mapping[str, Any], key: str, default: float, where: str, problems: list[str],
    lo: float = 0.0, hi: float = math.inf, whole: bool = False,
) -> float:  # fmt: skip
    v = table.get(key, default)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and whole and not isinstance(v, int):
        ok = False
    if not ok or not lo <= v <= hi:
        kind = "whole number" if whole else "number"
        problems.append(f"task.toml: {where}.{key} must be a {kind} in [{lo:g}, {hi:g}], not {v!r}")
        return default
    return v  # type: ignore[no-any-return]


def _unknown(table: Mapping[str, Any], known: set[str], where: str, problems: list[str]) -> None:
    for k in sorted(set(table) - known):
        problems.append(
            f"task.toml: unknown key {k!r} in {where} (known: {', '.join(sorted(known))})"
        )


def _fault(raw: Any, where: str, problems: list[str]) -> PhaseFault | None:
    if not isinstance(raw, dict):
        problems.append(f"task.toml: {where} must be a table")
        return None
    _unknown(raw, {"kind", "host", "at", "duration", "params"}, where, problems)
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        problems.append(f'task.toml: {where}.kind must be a fault kind (e.g. "crash")')
        return None
    host = raw.get("host", "any")
    if not isinstance(host, str) or not host:
        problems.append(f'task.toml: {where}.host must be a host name or "any"')
        host = "any"
    at = raw.get("at", 0.0)
    pair = at if isinstance(at, list) else [at, at]
    if (
        len(pair) != 2
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair)
        or not all(math.isfinite(x) and x >= 0 for x in pair)
        or pair[0] > pair[1]
    ):
        problems.append(f"task.toml: {where}.at must be seconds >= 0 or [lo, hi], not {at!r}")
        pair = [0.0, 0.0]
    duration = _number(raw, "duration", 0.0, where, problems, 0.0, 86400.0)
    params = raw.get("params", {})
    if not isinstance(params, dict):
        problems.append(f"task.toml: {where}.params must be a table")
        params = {}
    return PhaseFault(kind, host, (float(pair[0]), float(pair[1])), float(duration), params)


def _add_hosts(raw: Any, where: str, problems: list[str]) -> AddHosts | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f'task.toml: {where} must be a table ({{ role = "kv", count = 2 }})')
        return None
    _unknown(raw, {"role", "count", "start", "clients"}, where, problems)
    if "count" not in raw:
        problems.append(f"task.toml: {where}.count is missing (how many hosts to add)")
        return None
    count = int(_number(raw, "count", 0, where, problems, 1, MAX_ADDED, whole=True))
    role = raw.get("role")
    if role is not None and (not isinstance(role, str) or not role):
        problems.append(f"task.toml: {where}.role must be the name of a role, not {role!r}")
        role = None
    flags = {}
    for key in ("start", "clients"):
        flags[key] = raw.get(key, False)
        if not isinstance(flags[key], bool):
            problems.append(f"task.toml: {where}.{key} must be true or false, not {flags[key]!r}")
            flags[key] = False
    return AddHosts(count, role, flags["start"], flags["clients"]) if count >= 1 else None


def _phase(raw: Any, i: int, problems: list[str]) -> PhaseSpec | None:
    where = f"phases[{i}]"
    if not isinstance(raw, dict):
        problems.append(f"task.toml: {where} must be a table")
        return None
    known = {"name", "ticket", "max_steps", "max_s", "weight", "grade_s", "faults", "add_hosts"}
    _unknown(raw, known, where, problems)
    name = raw.get("name")
    if not isinstance(name, str) or not PHASE_RE.match(name):
        problems.append(
            f"task.toml: {where}.name {name!r} must be 1-32 lowercase letters, digits or -"
        )
        return None
    ticket = raw.get("ticket")
    if not isinstance(ticket, str) or not ticket.strip():
        problems.append(f"task.toml: {where}.ticket must name the ticket's file (tickets/...)")
        ticket = ""
    faults_raw = raw.get("faults", [])
    if not isinstance(faults_raw, list) or len(faults_raw) > MAX_FAULTS_PER_PHASE:
        problems.append(
            f"task.toml: {where}.faults must be a list of at most {MAX_FAULTS_PER_PHASE}"
        )
        faults_raw = []
    faults = [_fault(f, f"{where}.faults[{j}]", problems) for j, f in enumerate(faults_raw)]
    return PhaseSpec(
        name,
        ticket,
        int(_number(raw, "max_steps", 50, where, problems, 1, 10_000, whole=True)),
        float(_number(raw, "max_s", 1800.0, where, problems, 1.0, 86400.0)),
        float(_number(raw, "weight", 1.0, where, problems, 0.0, 1000.0)),
        float(_number(raw, "grade_s", 60.0, where, problems, 1.0, 3600.0)),
        tuple(f for f in faults if f is not None),
        _add_hosts(raw.get("add_hosts"), f"{where}.add_hosts", problems),
    )


def parse_operate(raw: Mapping[str, Any], problems: list[str]) -> OperateSpec | None:
    """The live-episode part of ``task.toml`` (None for a build-then-submit task)."""
    mode = raw.get("mode", "build")
    if mode not in ("build", "operate"):
        problems.append(f'task.toml: mode must be "build" or "operate", not {mode!r}')
        return None
    if mode == "build":
        for key in ("operate", "phases"):
            if key in raw:
                problems.append(f'task.toml: [{key}] needs mode = "operate"')
        return None
    op = raw.get("operate")
    if not isinstance(op, dict):
        problems.append('task.toml: mode = "operate" needs an [operate] table')
        return None
    known = {"start", "port", "service", "probe", "rate", "timeout_s", "slo", "latency_ms"}
    known |= {"listen_s", "audit_s", "handover_s", "weights", "workload", "keys", "writes"}
    known |= {"inherit_base", "budget_window_s"}
    _unknown(op, known, "[operate]", problems)
    start = op.get("start")
    if not isinstance(start, list) or not start or not all(isinstance(a, str) for a in start):
        problems.append("task.toml: operate.start must be the start command as a list of strings")
        start = ["/bin/false"]
    service = op.get("service", "app")
    if not isinstance(service, str) or not re.match(r"^[a-z][a-z0-9_-]{0,31}$", service):
        problems.append(f"task.toml: operate.service {service!r} must be a short lowercase name")
        service = "app"
    probe = op.get("probe", "/")
    if not isinstance(probe, str) or not probe.startswith("/"):
        problems.append(f"task.toml: operate.probe must be a path starting with /, not {probe!r}")
        probe = "/"
    workload = op.get("workload", "probe")
    if workload not in WORKLOADS:
        problems.append(
            f"task.toml: operate.workload must be one of {', '.join(WORKLOADS)}, not {workload!r}"
        )
        workload = "probe"
    for key in ("keys", "writes"):
        if key in op and workload != "kv":
            problems.append(f'task.toml: operate.{key} needs workload = "kv"')
    base = op.get("inherit_base")
    inherit_base = None
    if base is not None:
        task, _, tier = base.partition(":") if isinstance(base, str) else ("", "", "")
        if not task or not tier:
            problems.append(
                f'task.toml: operate.inherit_base must be "<task>:<tier>" (a reference of '
                f'another task, e.g. "kv-replicated:robust"), not {base!r}'
            )
        else:
            inherit_base = (task, tier)
    weights_raw = op.get("weights", {"phases": 0.6, "service": 0.3, "audit": 0.1})
    if not isinstance(weights_raw, dict):
        problems.append("task.toml: [operate.weights] must be a table")
        weights_raw = {}
    _unknown(weights_raw, set(WEIGHT_KEYS), "[operate.weights]", problems)
    weights = {
        k: float(_number(weights_raw, k, 0.0, "operate.weights", problems, 0, 1000))
        for k in WEIGHT_KEYS
    }
    if sum(weights.values()) <= 0:
        problems.append("task.toml: [operate.weights] must give some part a positive weight")
    phases_raw = raw.get("phases")
    if not isinstance(phases_raw, list) or not phases_raw or len(phases_raw) > MAX_PHASES:
        problems.append(f"task.toml: an operate task needs 1-{MAX_PHASES} [[phases]]")
        phases_raw = []
    parsed = [_phase(raw_p, i, problems) for i, raw_p in enumerate(phases_raw)]
    phases = [p for p in parsed if p is not None]
    names = [p.name for p in phases]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"task.toml: phase name {n!r} is used twice")
    if phases and weights["phases"] > 0 and sum(p.weight for p in phases) <= 0:
        problems.append(
            "task.toml: the phases' weights are all 0 but operate.weights.phases is not"
        )
    window = None
    if "budget_window_s" in op:
        window = float(_number(op, "budget_window_s", 0.0, "operate", problems, 1.0, 86400.0))
    return OperateSpec(
        tuple(start),
        int(_number(op, "port", 8080, "operate", problems, 1, 65535, whole=True)),
        tuple(phases),
        service,
        probe,
        float(_number(op, "rate", 10.0, "operate", problems, 0.5, MAX_RATE)),
        float(_number(op, "timeout_s", 1.0, "operate", problems, 0.05, 30.0)),
        float(_number(op, "slo", 0.95, "operate", problems, 0.0, 0.9999)),
        float(_number(op, "latency_ms", 500.0, "operate", problems, 1.0, 60_000.0)),
        float(_number(op, "listen_s", 10.0, "operate", problems, 1.0, 600.0)),
        float(_number(op, "audit_s", 60.0, "operate", problems, 1.0, 3600.0)),
        float(_number(op, "handover_s", 10.0, "operate", problems, 0.0, 3600.0)),
        window,
        weights,
        workload,
        int(_number(op, "keys", 16, "operate", problems, 1, 10_000, whole=True)),
        float(_number(op, "writes", 0.5, "operate", problems, 0.01, 1.0)),
        inherit_base,
    )
