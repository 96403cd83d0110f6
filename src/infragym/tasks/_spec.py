"""A task folder and its ``task.toml``.

::

    tasks/<name>/
      task.toml          name, summary, tags, topology, limits, grading budget and cost
                         (cores one grading uses), contract, requires (the Debian packages
                         the hosts need), variants
      instructions.md    everything the agent is told, including the deployment contract:
                         a template rendered with the episode's variant (``_variants``)
      workspace/         starter files copied into the agent's workspace
      grader.py          hidden: ``async def grade(ctx: GradeContext) -> GradeOutcome``;
                         ``START_CMD``, if set, the argv grading deploys (its /srv/app/
                         files must be in workspace/ and every solution)
      solutions/<tier>/  hidden reference solutions (broken, naive, robust, ...), whole
                         workspaces or overlays on another tier (``_solutions``)
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..probes import probe
from ._contract import PREFIXLEN, SUBNET, Subnet, contract_env, env_table
from ._operate import NEW_NAMES, AddHosts, OperateSpec, PhaseSpec, parse_operate
from ._packages import missing_packages, parse_requires, require_packages
from ._roles import ROLE_FIELD, Role, parse_roles, reserved_names, resources, role_env_values
from ._solutions import materialize_overlay, materialize_solution, solution_problems
from ._validation import STARTER, Validation, parse_validation, probe_problems
from ._variants import (
    HOST_PREFIX,
    HOSTS,
    MAX_HOSTS,
    Scalar,
    Variant,
    count_variants,
    draw,
    host_names,
    parse_variants,
    render,
    spoken_list,
    template_problems,
)

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,47}$")
GRADE_MISSING = "grader.py must define `async def grade(ctx)`"
DEFAULT_GRADING_CORES = 0.5  # a grading with load and faults on a few hosts, measured


@dataclass(frozen=True)
class Topology:
    """``[topology]``: the default variant's host count, the dev hosts' (0: none; with a
    ``hosts`` variant or roles they follow production) and the roles, if any."""

    hosts: int = 3
    dev_hosts: int = 3
    roles: tuple[Role, ...] = ()


@dataclass(frozen=True)
class Limits:
    max_steps: int = 100
    agent_wall_s: float = 3600.0
    command_timeout_s: float = 120.0


@dataclass(frozen=True)
class TaskSpec:
    name: str
    summary: str
    tags: tuple[str, ...] = ()
    version: int = 1
    topology: Topology = field(default_factory=Topology)
    limits: Limits = field(default_factory=Limits)
    grading_budget_s: float = 300.0
    validation: Validation = field(default_factory=Validation)
    contract_env: Mapping[str, str] = field(default_factory=dict)
    """``[contract.env]``: every host's; a role's ``env`` is added on its hosts."""
    apt: tuple[str, ...] = ()
    """``[requires] apt``: the Debian packages the task's hosts need installed."""
    grading_cores: float = DEFAULT_GRADING_CORES
    """``[grading] cores``: the CPU one grading uses, in cores (admission control)."""
    variants: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)
    """``[variants]``: the values each key may take (the first: the default variant)."""
    operate: OperateSpec | None = None
    """``mode = "operate"``: a live episode in phases (``_operate``); None: build-then-submit."""
    grading_max_sut_stall: float | None = None
    """``[grading] max_sut_stall``: the share of the load window the graded hosts may wait
    for a CPU before the grade is withheld as overloaded (measured per task); None: not
    judged (recorded only)."""

    @property
    def mode(self) -> str:
        return "build" if self.operate is None else "operate"

    @property
    def variant_count(self) -> int:
        """How many distinct variants the task has (1 when it varies nothing)."""
        return count_variants(self.variants)

    def variant(self, seed: int | None = None) -> Variant:
        """The variant of ``seed`` (a pure function of the task's name and the seed; None:
        the default variant). Its host count is the ``hosts`` key's, else the topology's;
        the dev hosts follow the production topology (none if ``dev_hosts = 0``)."""
        values = draw(self.name, self.variants, seed)
        if self.topology.roles:
            res = {n: resources(r, values) for r in self.topology.roles for n in r.names(values)}
            return Variant(values, list(res), list(res) if self.topology.dev_hosts else [], res)
        hosts = int(values[HOSTS]) if HOSTS in values else self.topology.hosts
        names = host_names(values, hosts)
        dev = self.topology.dev_hosts
        if HOSTS in values and dev:
            dev = hosts
        return Variant(values, names, host_names(values, dev))

    def grow(self, variant: Variant, add: AddHosts) -> tuple[Variant, tuple[str, ...]]:
        """The variant of a production cluster grown by ``add`` (a phase's
        ``add_hosts``), and the new hosts' names: the role's prefix (``host_prefix``, or
        ``n``, without roles) with the numbers after the hosts it has, each with the
        role's resources. A ConfigError for a role the task does not have."""
        values = variant.to_dict()
        if add.role is None:
            if self.topology.roles:
                raise ConfigError(f"{self.name}: add_hosts must name a role of the task")
            prefix = str(values.get(HOST_PREFIX, "n"))
            have = len(variant.host_names)
            new = tuple(f"{prefix}{have + i + 1}" for i in range(add.count))
            return Variant(values, [*variant.host_names, *new], variant.dev_host_names), new
        role = next((r for r in self.topology.roles if r.name == add.role), None)
        if role is None:
            raise ConfigError(f"{self.name}: add_hosts names no role of the task: {add.role!r}")
        prefix = role.value("prefix", values)
        have = len(variant.roles.get(role.name, ()))
        new = tuple(f"{prefix}{have + i + 1}" for i in range(add.count))
        clash = sorted(set(new) & set(variant.host_names))
        if clash:
            raise ConfigError(f"{self.name}: the added hosts' names {clash} are taken")
        res = {**variant.resources, **{n: resources(role, values) for n in new}}
        grown = Variant(values, [*variant.host_names, *new], variant.dev_host_names, res)
        return grown, new

    def host_env(
        self,
        node_id: str,
        hosts: Mapping[str, str],
        variant: Variant | None = None,
        subnet: ipaddress.IPv4Network | str | None = None,
    ) -> dict[str, str]:
        """The ``[contract.env]`` of one host of a cluster (``hosts``: name to address):
        ``{node_id}`` is its name, ``{address}`` its address, ``{peers}`` every host of the
        cluster as ``name=address`` joined by commas (itself included); a variant key
        (``{port}``) its value in ``variant`` (default: the default variant), ``{hosts}``
        the cluster's host count. With roles, ``{role}`` is the host's role, the role's
        ``env`` is added and ``{r_names}`` etc. list each role's hosts of ``hosts``.
        ``{subnet}``, ``{subnet[n]}`` and ``{prefixlen}`` need the cluster's ``subnet``
        (a ConfigError without it)."""
        v = variant if variant is not None else self.variant()
        values = {
            **v.env_values(),
            **role_env_values(v.roles, hosts),
            HOSTS: str(len(hosts)),
            ROLE_FIELD: v.resources[node_id].role if node_id in v.resources else "",
            "node_id": node_id,
            "address": hosts[node_id],
            "peers": ",".join(f"{n}={a}" for n, a in hosts.items()),
        }
        fields: dict[str, Any] = values
        if subnet is not None:
            net = Subnet(subnet, v)
            fields = {**values, SUBNET: net, PREFIXLEN: str(net.net.prefixlen)}
        env = dict(self.contract_env)
        for role in self.topology.roles:
            if values[ROLE_FIELD] == role.name:
                env.update(role.env)
        try:
            return {k: val.format_map(fields) for k, val in env.items()}
        except KeyError as exc:
            if exc.args[0] not in (SUBNET, PREFIXLEN):
                raise
            raise ConfigError(
                f"the contract of {self.name} names {{{exc.args[0]}}}: give host_env the "
                "cluster's subnet"
            ) from None

    def contract_names(self) -> list[str]:
        """Every variable name the contract sets on some host (``[contract.env]``, roles')."""
        names = dict.fromkeys(self.contract_env)
        for role in self.topology.roles:
            names.update(dict.fromkeys(role.env))
        return list(names)


@dataclass(frozen=True)
class Task:
    """A loaded task: its spec and where its parts live."""

    spec: TaskSpec
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def instructions_path(self) -> Path:
        return self.path / "instructions.md"

    @property
    def instructions_template(self) -> str:
        """``instructions.md`` as written, ``{{ placeholders }}`` and all."""
        return self.instructions_path.read_text(encoding="utf-8")

    def render_instructions(self, variant: Variant) -> str:
        """What the agent is told in ``variant``: the template with its values."""
        return render(self.instructions_template, variant.template_values(), "instructions.md")

    def render_ticket(self, phase: PhaseSpec, grown: Variant, new: Sequence[str]) -> str:
        """A live phase's ticket as the agent reads it: the values of ``grown`` (the
        cluster as the phase opens: ``{{ kv_names }}``...) and ``{{ new_names }}``, the
        hosts the phase added ("none" if it added none)."""
        values = {**grown.template_values(), NEW_NAMES: spoken_list(new) if new else "none"}
        text = (self.path / phase.ticket).read_text(encoding="utf-8")
        return render(text, values, phase.ticket).strip()

    def instructions_for(self, seed: int | None) -> str:
        """What the agent is told in the episode of ``seed`` (None: the default variant)."""
        return self.render_instructions(self.spec.variant(seed))

    @property
    def instructions(self) -> str:
        """The instructions of the default variant."""
        return self.instructions_for(None)

    @property
    def workspace(self) -> Path:
        return self.path / "workspace"

    @property
    def grader_path(self) -> Path:
        return self.path / "grader.py"

    def missing_packages(self) -> tuple[str, ...]:
        """The packages of ``[requires] apt`` not installed on this machine (empty: ready)."""
        return missing_packages(self.spec.apt)

    def require_ready(self) -> None:
        """A CapabilityError giving the install command if any required package is missing."""
        require_packages(self.name, self.spec.apt)

    def solutions(self) -> dict[str, Path]:
        """The tiers' folders by name (an overlay's folder holds only what it changes: its
        files are ``solution(tier)``)."""
        d = self.path / "solutions"
        if not d.is_dir():
            return {}
        return {p.name: p for p in sorted(d.iterdir()) if p.is_dir()}

    def solution(self, tier: str) -> Path:
        sols = self.solutions()
        if tier not in sols:
            raise ConfigError(
                f"task {self.name} has no reference solution {tier!r} "
                f"(it has: {', '.join(sols) or 'none'})"
            )
        return materialize_solution(self.path, tier, self.name)

    def inherited(self) -> Path:
        """A live task's inherited system: ``inherit/``, laid over another task's
        reference when ``[operate] inherit_base`` names one."""
        op = self.spec.operate
        if op is None or op.inherit_base is None:
            return self.path / "inherit"
        from ._registry import find_task

        name, tier = op.inherit_base
        if name == self.name:
            raise ConfigError(f"task {self.name}: inherit_base names the task itself")
        base = find_task(name).solution(tier)
        return materialize_overlay(base, self.path / "inherit", self.name, "inherit")

    def probe_base(self, name: str) -> Path | None:
        """The reference solution the catalogue's probe ``name`` is built on (the task's
        ``[validation] probe_base``), or None if it is built on none."""
        p = probe(name)
        if not p.needs_base:
            return None
        base = self.spec.validation.probe_base
        if base not in self.solutions():
            raise ConfigError(
                f"hack probe {name} is built on the reference solutions/{base}/ of task "
                f"{self.name} ([validation] probe_base), which it does not have "
                f"(it has: {', '.join(self.solutions()) or 'none'}): add it or set probe_base"
            )
        return self.solution(base)


def _num(
    d: dict[str, Any],
    key: str,
    kind: type,
    default: Any,
    problems: list[str],
    where: str,
    minimum: float = 0,
) -> Any:
    v: Any = d.get(key, default)
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    ok = isinstance(v, kind) and not isinstance(v, bool)
    if not ok or not isinstance(v, (int, float)) or not math.isfinite(v) or v < minimum:
        problems.append(f"{where}.{key} must be a {kind.__name__} >= {minimum}, not {v!r}")
        return default
    return v


def parse_spec(path: Path, problems: list[str]) -> TaskSpec | None:
    """Parse ``task.toml``; append every problem found to ``problems``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path} is missing")
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: not valid TOML ({exc})")
        return None
    known = {"name", "summary", "tags", "version", "topology", "limits", "grading", "contract"}
    known |= {"validation", "requires", "variants", "mode", "operate", "phases"}
    for k in sorted(set(raw) - known):
        problems.append(f"task.toml: unknown key {k!r} (known: {', '.join(sorted(known))})")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"task.toml: name {name!r} must be 2-48 lowercase letters, digits or -")
        name = "invalid"
    summary = raw.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        problems.append("task.toml: summary must be a non-empty string")
        summary = ""
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append("task.toml: tags must be a list of strings")
        tags = []
    version = _num(raw, "version", int, 1, problems, "task.toml", 1)
    topo = raw.get("topology", {})
    lim = raw.get("limits", {})
    grading = raw.get("grading", {})
    for sect, val in (("topology", topo), ("limits", lim), ("grading", grading)):
        if not isinstance(val, dict):
            problems.append(f"task.toml: [{sect}] must be a table")
    topo = topo if isinstance(topo, dict) else {}
    lim = lim if isinstance(lim, dict) else {}
    grading = grading if isinstance(grading, dict) else {}
    for sect, table, keys in (
        ("topology", topo, {"hosts", "dev_hosts", "roles"}),
        ("limits", lim, {"max_steps", "agent_wall_s", "command_timeout_s"}),
        ("grading", grading, {"budget_s", "cores", "max_sut_stall"}),
    ):
        for k in sorted(set(table) - keys):
            problems.append(
                f"task.toml: unknown key {k!r} in [{sect}] (known: {', '.join(sorted(keys))})"
            )
    hosts = _num(topo, "hosts", int, 3, problems, "topology", 1)
    dev = _num(topo, "dev_hosts", int, hosts, problems, "topology", 0)
    variants = parse_variants(raw.get("variants"), problems)
    contract_raw = raw.get("contract", {})
    roles = parse_roles(
        topo.get("roles"),
        variants,
        lambda env, where, roles: env_table(
            env, f"topology.roles.{where}", variants, roles, problems
        ),
        problems,
    )
    if roles:
        first = sum(len(r.names(draw(name, variants, None))) for r in roles)
        hosts, dev = _variant_topology(topo, first, hosts, dev, problems, "the roles make")
    elif HOSTS in variants:
        hosts, dev = _variant_topology(topo, int(variants[HOSTS][0]), hosts, dev, problems)
    for k, v in (("hosts", int(hosts)), ("dev_hosts", int(dev))):
        if v > 16:
            problems.append(f"topology.{k} = {v}: a cluster has at most 16 hosts")
    limits = Limits(
        max_steps=_num(lim, "max_steps", int, 100, problems, "limits", 1),
        agent_wall_s=_num(lim, "agent_wall_s", float, 3600.0, problems, "limits", 1),
        command_timeout_s=_num(lim, "command_timeout_s", float, 120.0, problems, "limits", 1),
    )
    budget = _num(grading, "budget_s", float, 300.0, problems, "grading", 1)
    cores = _num(grading, "cores", float, DEFAULT_GRADING_CORES, problems, "grading", 0.01)
    sut_stall = None
    if "max_sut_stall" in grading:
        sut_stall = _num(grading, "max_sut_stall", float, None, problems, "grading", 0.01)
        if sut_stall is not None and sut_stall > 1.0:
            problems.append(f"grading.max_sut_stall must be a share <= 1, not {sut_stall!r}")
            sut_stall = None
    validation = parse_validation(raw.get("validation"), problems)
    contract = contract_env(contract_raw, variants, roles, problems)
    for key, why in reserved_names(roles).items():
        if key in variants:
            problems.append(f"task.toml: variants.{key}: {key!r} is a name of {why}; rename it")
    apt = parse_requires(raw.get("requires"), problems)
    operate = parse_operate(raw, problems)
    if operate is not None:
        problems += _growth_problems(operate, roles, variants, int(hosts))
    return TaskSpec(
        name,
        summary.strip(),
        tuple(tags),
        version,
        Topology(hosts, dev, roles),
        limits,
        budget,
        validation,
        contract,
        apt,
        cores,
        variants,
        operate,
        sut_stall,
    )


def _growth_problems(
    op: OperateSpec, roles: tuple[Role, ...], variants: Mapping[str, Any], hosts: int
) -> list[str]:
    """Each phase's ``add_hosts`` names a role the task has (or none, without roles), and
    the largest variant's cluster stays within a cluster's hosts once every phase grew it."""
    out = []
    names = [r.name for r in roles]
    added = 0
    for i, ph in enumerate(op.phases):
        add = ph.add_hosts
        if add is None:
            continue
        added += add.count
        where = f"task.toml: phases[{i}].add_hosts"
        if roles and add.role not in names:
            out.append(
                f"{where}.role must be one of the roles: {', '.join(names)} (not {add.role!r})"
            )
        elif not roles and add.role is not None:
            out.append(f"{where}.role: the task declares no [topology.roles]; leave role out")
    if added:
        if roles:
            most = sum(max(r.choices("hosts", variants)) for r in roles)
        else:
            most = max((int(v) for v in variants.get(HOSTS, ())), default=hosts)
        if most + added > MAX_HOSTS:
            out.append(
                f"task.toml: the phases add {added} hosts to a cluster of up to {most}: a "
                f"cluster has at most {MAX_HOSTS}"
            )
    return out


def _variant_topology(
    topo: dict[str, Any],
    first: int,
    hosts: int,
    dev: int,
    problems: list[str],
    source: str = "[variants] hosts starts with",
) -> tuple[int, int]:
    """With a ``hosts`` variant or roles, [topology] states the default variant's: its
    ``hosts``, if given, is that count, and the dev hosts follow production (``dev_hosts``
    is that count, 0 for none, or left out)."""
    if "hosts" in topo and hosts != first:
        problems.append(
            f"topology.hosts = {hosts}, but {source} {first} (the default variant): make "
            "them equal or leave topology.hosts out"
        )
    if "dev_hosts" in topo and dev not in (0, first):
        problems.append(
            f"topology.dev_hosts = {dev}: with a hosts variant or roles the dev hosts follow the "
            "production topology; set it to 0 (no dev hosts) or leave it out"
        )
    return first, 0 if dev == 0 else first


def validate_layout(path: Path) -> list[str]:
    """Every problem of a task folder at once (spec, files, grader entry point)."""
    problems: list[str] = []
    if not path.is_dir():
        return [f"{path} is not a directory"]
    spec = parse_spec(path / "task.toml", problems)
    if spec is not None and spec.name not in ("invalid", path.name):
        problems.append(f"task.toml: name {spec.name!r} differs from the folder name {path.name!r}")
    instr = path / "instructions.md"
    text = instr.read_text(encoding="utf-8", errors="replace") if instr.is_file() else ""
    if not text.strip():
        problems.append("instructions.md is missing or empty")
    elif spec is not None:
        problems += template_problems(
            text, list(spec.variant().template_values()), "instructions.md"
        )
    grader = path / "grader.py"
    if spec is not None and spec.operate is not None:
        known = list(spec.variant().template_values())
        return problems + _operate_problems(path, spec.operate, spec.validation, known)
    if not (path / "workspace").is_dir():
        problems.append("workspace/ is missing (the agent's starter files)")
    if not grader.is_file():
        problems.append("grader.py is missing")
    elif "async def grade(" not in grader.read_text(encoding="utf-8", errors="replace"):
        problems.append(GRADE_MISSING)
    sols = path / "solutions"
    if not sols.is_dir() or not any(p.is_dir() for p in sols.iterdir()):
        problems.append("solutions/ has no reference solution (e.g. solutions/robust/)")
    elif spec is not None:
        have = {p.name for p in sols.iterdir() if p.is_dir()} | {STARTER}
        have |= set(spec.validation.probes)
        for band in sorted(set(spec.validation.bands) - have):
            problems.append(
                f"task.toml: [validation.bands] names {band!r}, but there is no "
                f"solutions/{band}/ (bands name a solution folder, a listed probe or {STARTER!r})"
            )
        problems += probe_problems(spec, have)
        problems += solution_problems(path)
    return problems


def _operate_problems(
    path: Path,
    op: OperateSpec,
    validation: Validation | None = None,
    known: Sequence[str] | None = None,
) -> list[str]:
    """A live task's files: ``inherit/`` (the system the agent inherits), each phase's
    ticket, and grader.py with ``grade_<phase>`` for every phase."""
    problems: list[str] = []
    if not (path / "inherit").is_dir():
        problems.append("inherit/ is missing (the system the agent inherits, at /srv/app)")
    sols = path / "solutions"
    tiers = {p.name for p in sols.iterdir() if p.is_dir()} if sols.is_dir() else set()
    for tier in sorted(tiers):
        here = sols / tier
        if not (here / "operator.py").is_file() and not (here / "solution.toml").is_file():
            problems.append(
                f"solutions/{tier}/ has no operator.py (a live task's tier is an operator: "
                "async def operate(shift))"
            )
    if validation is not None:
        for band in sorted(set(validation.bands) - tiers - {"noop"}):
            problems.append(
                f"task.toml: [validation.bands] names {band!r}, but there is no solutions/{band}/ "
                "(a live task's bands name an operator tier or 'noop')"
            )
    if op.inherit_base is not None:
        from ._registry import find_task

        name, tier = op.inherit_base
        try:
            find_task(name).solution(tier)
        except ConfigError as exc:
            problems.append(f"task.toml: operate.inherit_base: {exc}")
    for ph in op.phases:
        ticket = (path / ph.ticket).resolve()
        if not ticket.is_relative_to(path.resolve()) or not ticket.is_file():
            problems.append(f"phase {ph.name}: its ticket {ph.ticket} is not a file of the task")
        elif known is not None:
            text = ticket.read_text(encoding="utf-8", errors="replace")
            problems += template_problems(text, [*known, NEW_NAMES], ph.ticket)
    grader = path / "grader.py"
    if not grader.is_file():
        problems.append("grader.py is missing")
        return problems
    text = grader.read_text(encoding="utf-8", errors="replace")
    for ph in op.phases:
        if f"async def {ph.grader}(" not in text:
            problems.append(f"grader.py must define `async def {ph.grader}(ctx)` (phase {ph.name})")
    if op.weights.get("audit", 0) > 0 and "async def audit(" not in text:
        problems.append("grader.py must define `async def audit(ctx)` (operate.weights.audit > 0)")
    return problems


# every task folder this process has loaded, by name or by path: all are hidden from sandboxes
LOADED_DIRS: set[Path] = set()


def load_task(path: str | Path) -> Task:
    """Load a task folder; a task with problems is a ConfigError listing all of them."""
    path = Path(path)
    problems = validate_layout(path)
    if problems:
        raise ConfigError(f"task {path} is invalid:\n  - " + "\n  - ".join(problems))
    spec = parse_spec(path / "task.toml", [])
    assert spec is not None
    LOADED_DIRS.add(path.resolve())
    return Task(spec, path)
