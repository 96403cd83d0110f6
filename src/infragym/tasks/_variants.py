"""``[variants]`` of ``task.toml``: what a task's episodes vary, and the template its
instructions are written in.

::

    [variants]
    hosts = [3, 5]                     # the cluster's host count, graded and dev hosts alike
    host_prefix = ["n", "kv", "node"]  # the hosts' names: n1, n2, ... or kv1, kv2, ...
    port = [8080, 9000]                # any other key: a value the task uses

A variant takes one value of each key, drawn from the episode's seed with
``random.Random(f"{task}:{seed}:variant")``, key by key in sorted order: the same seed
always gives the same variant, whatever Python's hash seed. Without a seed it is the default
variant, the first value of each list. ``instructions.md`` is a template: ``{{ name }}`` is
replaced by the variant's value of ``name`` or a value derived from its hosts
(:data:`DERIVED`); a ``[contract.env]`` value may name a key as ``{port}``.

Adding a key or a value changes which variant a seed draws: a task that does bumps its
``version``.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .._errors import ConfigError
from ..sandbox import Limits

Scalar = str | int | float | bool
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
PREFIX_RE = re.compile(r"^[a-z]{1,6}$")  # with up to two digits: a valid host name
MAX_VALUES = 64
MAX_HOSTS = 16  # a cluster's (sandbox.Cluster)
HOSTS = "hosts"
HOST_PREFIX = "host_prefix"
CONTRACT_FIELDS = ("node_id", "address", "peers", "subnet", "prefixlen")
"""What the platform fills in per host in ``[contract.env]`` values (``{subnet}``, the
cluster's subnet, also as ``{subnet[n]}``: its ``n``-th address, see ``_contract``)."""
DERIVED = (
    "host_names",  # "n1, n2 and n3"
    "majority",  # "2" of 3 hosts, "3" of 5
    "node_example",  # a host's name, the second's: "n2"
    "address_example",  # an address such a host may have: "198.18.0.2"
    "peers_example",  # PEERS as such hosts would get it: "n1=198.18.0.1,n2=...,n3=..."
)
"""The template values derived from a variant's hosts, beside ``hosts`` (their number)."""
EXAMPLE_NET = "198.18.0."


def text(value: Scalar) -> str:
    """A value as a template or the environment shows it (booleans as TOML writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def spoken_list(names: Sequence[str]) -> str:
    """``n1, n2 and n3``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class HostResources:
    """What one host of a role gets (``[topology.roles]``; None: the cluster's default)."""

    role: str
    cores: float | None = None
    memory_mb: int | None = None
    disk_mb: int | None = None
    net_admin: bool = False

    def limits(self, base: Limits | None = None) -> Limits:
        """``base`` (default: the cluster's) with this host's CPU and memory."""
        out = base or Limits()
        if self.cores is not None:
            out = replace(out, cpu=float(self.cores))
        if self.memory_mb is not None:
            out = replace(out, memory_bytes=self.memory_mb << 20)
        return out


class Variant(Mapping[str, Scalar]):
    """One variant of a task: a read-only mapping of each ``[variants]`` key to its value,
    and the names of the production hosts (``host_names``) and of the agent's dev hosts
    (``dev_host_names``: the same topology, or none).

    A task with ``[topology.roles]`` also has ``roles`` (each role's host names, in the
    order declared) and ``resources`` (each host's :class:`HostResources`); without, both
    are empty. :meth:`cluster_options` gives what ``Cluster`` needs to build the hosts so.
    """

    __slots__ = ("_values", "dev_host_names", "host_names", "resources", "roles")

    def __init__(
        self,
        values: Mapping[str, Scalar],
        hosts: Sequence[str],
        dev_hosts: Sequence[str],
        resources: Mapping[str, HostResources] | None = None,
    ) -> None:
        self._values = dict(values)
        self.host_names = tuple(hosts)
        self.dev_host_names = tuple(dev_hosts)
        self.resources = dict(resources or {})
        roles: dict[str, list[str]] = {}
        for name, r in self.resources.items():
            roles.setdefault(r.role, []).append(name)
        self.roles = {role: tuple(names) for role, names in roles.items()}

    def role_of(self, host: str) -> str:
        """The role of ``host`` (a ConfigError for a host of no role)."""
        r = self.resources.get(host)
        if r is None:
            why = "it is not one of the hosts" if self.roles else "the task declares no roles"
            raise ConfigError(f"host {host!r} has no role: {why} (roles: {self.roles or 'none'})")
        return r.role

    def hosts_of(self, *roles: str) -> tuple[str, ...]:
        """The host names of ``roles``, role by role (e.g. what a sweep limited to some
        roles fails); an unknown role is a ConfigError naming the roles."""
        for role in roles:
            if role not in self.roles:
                known = ", ".join(self.roles) or "none: the task declares no roles"
                raise ConfigError(f"no role {role!r} (roles: {known})")
        return tuple(h for role in roles for h in self.roles[role])

    def cluster_options(
        self, hosts: Sequence[str] | None = None, base: Limits | None = None
    ) -> dict[str, Any]:
        """``Cluster`` keyword arguments building ``hosts`` (default: the production hosts)
        with their role's resources over ``base`` limits: ``host_limits``, ``data_sizes``
        and ``net_admin``. Hosts of no role get ``base`` (or the cluster's defaults)."""
        names = self.host_names if hosts is None else tuple(hosts)
        res = {n: self.resources[n] for n in names if n in self.resources}
        out: dict[str, Any] = {
            "host_limits": {n: r.limits(base) for n, r in res.items()},
            "data_sizes": {n: r.disk_mb << 20 for n, r in res.items() if r.disk_mb},
            "net_admin": sorted(n for n, r in res.items() if r.net_admin),
        }
        if base is not None:
            out["limits"] = base
        return out

    @classmethod
    def plain(cls, hosts: int = 3) -> Variant:
        """The variant of a task without ``[variants]``: ``hosts`` hosts n1, n2, ..."""
        names = [f"n{i + 1}" for i in range(hosts)]
        return cls({}, names, names)

    def __getitem__(self, key: str) -> Scalar:
        try:
            return self._values[key]
        except KeyError:
            known = ", ".join(self._values) or "none: the task has no [variants]"
            raise KeyError(f"{key!r} is no variant key (the keys: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Variant({self.describe()})"

    def describe(self) -> str:
        """``hosts=5 port=9000``, or ``default`` when the task varies nothing."""
        return " ".join(f"{k}={text(v)}" for k, v in self._values.items()) or "default"

    def to_dict(self) -> dict[str, Scalar]:
        return dict(self._values)

    def env_values(self) -> dict[str, str]:
        """What a ``[contract.env]`` value may name besides the per-host fields."""
        return {HOSTS: str(len(self.host_names)), **{k: text(v) for k, v in self.items()}}

    def template_values(self) -> dict[str, str]:
        """What ``{{ name }}`` in the instructions may name: every key, ``hosts`` and
        :data:`DERIVED`."""
        names = self.host_names
        example = 1 if len(names) > 1 else 0
        addresses = [f"{EXAMPLE_NET}{i + 1}" for i in range(len(names))]
        derived = {
            "host_names": spoken_list(names),
            "majority": str(len(names) // 2 + 1),
            "node_example": names[example],
            "address_example": addresses[example],
            "peers_example": ",".join(f"{n}={a}" for n, a in zip(names, addresses, strict=True)),
        }
        for role, hosts in self.roles.items():
            derived[f"{role}_hosts"] = str(len(hosts))
            derived[f"{role}_names"] = spoken_list(hosts)
        return {**self.env_values(), **derived}


def draw(
    task: str, variants: Mapping[str, Sequence[Scalar]], seed: int | None
) -> dict[str, Scalar]:
    """The value of each key for ``seed`` (None: the first value of each)."""
    if seed is None:
        return {k: variants[k][0] for k in sorted(variants)}
    rng = random.Random(f"{task}:{seed}:variant")
    return {k: rng.choice(list(variants[k])) for k in sorted(variants)}


def count_variants(variants: Mapping[str, Sequence[Scalar]]) -> int:
    """How many distinct variants the lists make (1 for a task that varies nothing)."""
    return math.prod(len(v) for v in variants.values())


def host_names(values: Mapping[str, Scalar], hosts: int) -> list[str]:
    """The hosts' names: ``host_prefix`` (default ``n``) and 1, 2, ..."""
    prefix = values.get(HOST_PREFIX, "n")
    return [f"{prefix}{i + 1}" for i in range(hosts)]


def parse_variants(raw: Any, problems: list[str]) -> dict[str, tuple[Scalar, ...]]:
    """``[variants]``: each key a list of one or more distinct scalars of one type."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("task.toml: [variants] must be a table of key = [values]")
        return {}
    out: dict[str, tuple[Scalar, ...]] = {}
    for key, values in raw.items():
        where = f"task.toml: variants.{key}"
        if not KEY_RE.match(key):
            problems.append(f"{where}: a key is 1-32 lowercase letters, digits or _")
            continue
        if key in CONTRACT_FIELDS or key in DERIVED:
            problems.append(
                f"{where}: {key!r} is a name the platform fills in itself (reserved: "
                f"{', '.join((*CONTRACT_FIELDS, *DERIVED))})"
            )
            continue
        if not isinstance(values, list) or not values:
            problems.append(f"{where} must be a non-empty list of values, not {values!r}")
            continue
        if len(values) > MAX_VALUES:
            problems.append(f"{where} has {len(values)} values; at most {MAX_VALUES}")
            continue
        bad = [v for v in values if not isinstance(v, (str, int, float, bool))]
        if bad:
            problems.append(
                f"{where}: {bad[0]!r} is not a string, number or boolean (values are scalars)"
            )
            continue
        nul = [v for v in values if isinstance(v, str) and "\0" in v]
        if nul:
            problems.append(f"{where}: {nul[0]!r} holds a NUL character, which no environment can")
            continue
        if len({type(v) for v in values}) > 1:
            problems.append(f"{where} mixes types ({values!r}): give values of one type")
            continue
        if len(set(values)) < len(values):
            dup = next(v for v in values if values.count(v) > 1)
            problems.append(f"{where} lists {dup!r} twice (it would be drawn twice as often)")
            continue
        if key == HOSTS and not all(type(v) is int and 1 <= v <= MAX_HOSTS for v in values):
            problems.append(f"{where}: host counts are whole numbers 1-{MAX_HOSTS}, not {values!r}")
            continue
        prefixes_ok = all(isinstance(v, str) and PREFIX_RE.match(v) for v in values)
        if key == HOST_PREFIX and not prefixes_ok:
            problems.append(
                f"{where}: a host name prefix is 1-6 lowercase letters (a number follows), "
                f"not {values!r}"
            )
            continue
        out[key] = tuple(values)
    return out


PLACEHOLDER_RE = re.compile(r"\{\{([^{}]*)\}\}")
NAME_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def template_problems(template: str, known: Sequence[str], where: str) -> list[str]:
    """Every ``{{ ... }}`` of ``template`` that is not ``{{ name }}`` of a known name."""
    out = []
    for m in PLACEHOLDER_RE.finditer(template):
        line = template.count("\n", 0, m.start()) + 1
        name = NAME_RE.match(m.group(1))
        if name is None:
            out.append(f"{where} line {line}: {m.group(0)!r} is not a placeholder {{{{ name }}}}")
        elif name.group(1) not in known:
            out.append(
                f"{where} line {line}: unknown placeholder {m.group(0)} (known: "
                f"{', '.join(sorted(known))})"
            )
    return out


def render(template: str, values: Mapping[str, str], where: str = "the template") -> str:
    """``template`` with each ``{{ name }}`` replaced by ``values[name]``; a ConfigError
    listing every unknown placeholder."""
    problems = template_problems(template, list(values), where)
    if problems:
        raise ConfigError("; ".join(problems))
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1).strip()], template)
