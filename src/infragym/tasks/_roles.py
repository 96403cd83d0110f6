"""``[topology.roles]`` of ``task.toml``: named groups of hosts with their own resources,
capabilities and contract environment (a heterogeneous topology).

::

    [variants]
    lb_hosts = [2, 3]
    app_prefix = ["app", "web"]

    [topology.roles.lb]            # the roles in the order written: lb1 lb2, then app1 ...
    hosts = "{lb_hosts}"           # a count, or "{key}" of a [variants] key
    prefix = "lb"                  # host names: lb1, lb2, ... (default: the role's name)
    cores = 0.5                    # CPU quota of each host, in cores (default: none)
    memory_mb = 256                # memory limit of each host (default: the cluster's)
    disk_mb = 64                   # size of each host's data disk /srv/data (default too)
    net_admin = true               # CAP_NET_ADMIN/NET_RAW in its own namespace (keepalived)

    [topology.roles.lb.env]        # added to [contract.env] on the role's hosts
    BACKENDS = "{app_addresses}"

    [topology.roles.app]
    hosts = 2
    prefix = "{app_prefix}"

Every field but ``env`` may be ``"{key}"``: the value of that variant key, each of whose
values must be valid for the field. A ``[contract.env]`` value may name, per role ``r``,
``{r_hosts}`` (its host count), ``{r_names}`` (its hosts' names joined by commas),
``{r_addresses}`` (their addresses) and ``{r_peers}`` (``name=address`` pairs), and per
host ``{role}``; the instructions may name ``{{ r_hosts }}`` and ``{{ r_names }}``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._variants import HOST_PREFIX, HOSTS, MAX_HOSTS, PREFIX_RE, HostResources, Scalar

ROLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
REF_RE = re.compile(r"^\{([a-z][a-z0-9_]{0,31})\}$")
ROLE_FIELD = "role"
"""The per-host contract field naming the host's role."""
ROLE_DERIVED = ("hosts", "names", "addresses", "peers")
"""``{r_<what>}`` of each role ``r`` in ``[contract.env]`` values."""
MAX_MEMORY_MB = 64 << 10
MAX_DISK_MB = 64 << 10


def _count(v: Any) -> str | None:
    ok = type(v) is int and 1 <= v <= MAX_HOSTS
    return None if ok else f"a host count is a whole number 1-{MAX_HOSTS}, not {v!r}"


def _prefix(v: Any) -> str | None:
    ok = isinstance(v, str) and PREFIX_RE.match(v)
    return None if ok else f"a host name prefix is 1-6 lowercase letters, not {v!r}"


def _cores(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and 0.01 <= v <= 64
    return None if ok else f"cores is a CPU quota of 0.01-64 cores, not {v!r}"


def _mb(lo: int, hi: int, what: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = type(v) is int and lo <= v <= hi
        return None if ok else f"{what} is a whole number of MiB {lo}-{hi}, not {v!r}"

    return check


def _flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"net_admin is true or false, not {v!r}"


FIELDS: dict[str, Callable[[Any], str | None]] = {
    "hosts": _count,
    "prefix": _prefix,
    "cores": _cores,
    "memory_mb": _mb(16, MAX_MEMORY_MB, "memory_mb"),
    "disk_mb": _mb(1, MAX_DISK_MB, "disk_mb"),
    "net_admin": _flag,
}
"""A role's fields (besides ``env``) and the check of each value."""


@dataclass(frozen=True)
class Ref:
    """A role field given as ``"{key}"``: the variant's value of ``key``."""

    key: str


@dataclass(frozen=True)
class Role:
    """One role as declared: each field a value or a :class:`Ref` to a variant key."""

    name: str
    fields: Mapping[str, Scalar | Ref]
    env: Mapping[str, str] = field(default_factory=dict)

    def value(self, name: str, values: Mapping[str, Scalar]) -> Any:
        """The field ``name`` in a variant's ``values`` (None if the role leaves it out)."""
        v = self.fields.get(name)
        return values[v.key] if isinstance(v, Ref) else v

    def names(self, values: Mapping[str, Scalar]) -> list[str]:
        prefix = self.value("prefix", values)
        return [f"{prefix}{i + 1}" for i in range(int(self.value("hosts", values)))]

    def choices(self, name: str, variants: Mapping[str, Sequence[Scalar]]) -> list[Any]:
        """Every value the field ``name`` may take across the variants."""
        v = self.fields.get(name)
        return list(variants[v.key]) if isinstance(v, Ref) else [v]


def resources(role: Role, values: Mapping[str, Scalar]) -> HostResources:
    return HostResources(
        role.name,
        role.value("cores", values),
        role.value("memory_mb", values),
        role.value("disk_mb", values),
        bool(role.value("net_admin", values)),
    )


def reserved_names(roles: Sequence[Role]) -> dict[str, str]:
    """The variant keys the roles make names of, and why (``lb_names``: lb's host names)."""
    out = {ROLE_FIELD: "the host's role"}
    for r in roles:
        hosts = r.fields.get("hosts")
        for what in ROLE_DERIVED:
            key = f"{r.name}_{what}"
            if what == "hosts" and isinstance(hosts, Ref) and hosts.key == key:
                continue  # the count itself: the same value under the same name
            out[key] = f"role {r.name}'s {what}"
    return out


def parse_roles(
    raw: Any,
    variants: Mapping[str, Sequence[Scalar]],
    parse_env: Callable[[Any, str, Sequence[Role]], dict[str, str]],
    problems: list[str],
) -> tuple[Role, ...]:
    """``[topology.roles]``: each role's fields checked, for every variant they may take.
    ``parse_env(table, where, roles)`` checks a role's ``env`` as ``[contract.env]`` is."""
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        problems.append(
            "task.toml: [topology.roles] must be a table of roles ([topology.roles.lb])"
        )
        return ()
    for key in (HOSTS, HOST_PREFIX):
        if key in variants:
            problems.append(
                f"task.toml: variants.{key} cannot be used with [topology.roles]: each role "
                f'gives its own count and prefix (hosts = "{{lb_hosts}}", prefix = ...)'
            )
    roles: list[Role] = []
    for name, table in raw.items():
        where = f"task.toml: topology.roles.{name}"
        if not ROLE_RE.match(name):
            problems.append(f"{where}: a role name is 1-16 lowercase letters, digits or _")
            continue
        if not isinstance(table, dict):
            problems.append(f"{where} must be a table (hosts = 2, prefix = ..., ...)")
            continue
        fields = _parse_role(name, table, variants, where, problems)
        if fields is not None:
            roles.append(Role(name, fields))
    if len(roles) == len(raw):
        problems += _topology_problems(roles, variants)
    return tuple(
        replace(r, env=parse_env(raw[r.name].get("env", {}), f"{r.name}.env", roles)) for r in roles
    )


def _parse_role(
    name: str,
    table: dict[str, Any],
    variants: Mapping[str, Sequence[Scalar]],
    where: str,
    problems: list[str],
) -> dict[str, Scalar | Ref] | None:
    known = [*FIELDS, "env"]
    bad = False
    for k in sorted(set(table) - set(known)):
        problems.append(f"{where}: unknown key {k!r} (known: {', '.join(known)})")
        bad = True
    if "hosts" not in table:
        problems.append(f'{where}: hosts is missing (a count, or "{{key}}" of a variants key)')
        return None
    out: dict[str, Scalar | Ref] = {}
    given = dict(table)
    given.pop("env", None)
    if "prefix" not in given:
        if not PREFIX_RE.match(name):
            problems.append(f"{where}: give a prefix (the role's name {name!r} cannot be one)")
            return None
        given["prefix"] = name
    for k, v in given.items():
        check = FIELDS.get(k)
        if check is None:
            continue
        if isinstance(v, str) and "{" in v:
            m = REF_RE.match(v)
            if m is None:
                problems.append(f'{where}.{k} = {v!r}: a reference is "{{key}}" of a variants key')
                bad = True
                continue
            key = m.group(1)
            if key not in variants:
                problems.append(
                    f"{where}.{k} = {v!r}: no variants key {key!r} "
                    f"(the keys: {', '.join(variants) or 'none'})"
                )
                bad = True
                continue
            errors = [e for e in map(check, variants[key]) if e]
            if errors:
                problems.append(f"{where}.{k} = {v!r}: variants.{key}: {errors[0]}")
                bad = True
                continue
            out[k] = Ref(key)
        else:
            error = check(v)
            if error:
                hint = ' (or "{key}" of a variants key)' if k != "net_admin" else ""
                problems.append(f"{where}.{k}: {error}{hint}")
                bad = True
                continue
            out[k] = v
    return None if bad else out


def _topology_problems(roles: list[Role], variants: Mapping[str, Sequence[Scalar]]) -> list[str]:
    """Across every variant: at most MAX_HOSTS hosts, and no two roles sharing a name."""
    out = []
    most = sum(max(r.choices("hosts", variants)) for r in roles)
    if most > MAX_HOSTS:
        out.append(
            f"task.toml: [topology.roles] can make {most} hosts in all (the largest counts "
            f"of {', '.join(r.name for r in roles)}); a cluster has at most {MAX_HOSTS}"
        )
    for a, b in itertools.combinations(roles, 2):
        same = set(a.choices("prefix", variants)) & set(b.choices("prefix", variants))
        if same:
            out.append(
                f"task.toml: roles {a.name} and {b.name} can both use the prefix "
                f"{sorted(same)[0]!r}, so their hosts' names would clash: give them different "
                "prefixes"
            )
    return out


def role_env_values(roles: Mapping[str, Sequence[str]], hosts: Mapping[str, str]) -> dict[str, str]:
    """``{r_hosts}``, ``{r_names}``, ``{r_addresses}``, ``{r_peers}`` of each role, for the
    hosts of ``hosts`` (name to address) that have it."""
    out = {}
    for role, names in roles.items():
        present = [n for n in names if n in hosts]
        out[f"{role}_hosts"] = str(len(present))
        out[f"{role}_names"] = ",".join(present)
        out[f"{role}_addresses"] = ",".join(hosts[n] for n in present)
        out[f"{role}_peers"] = ",".join(f"{n}={hosts[n]}" for n in present)
    return out
