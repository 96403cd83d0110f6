"""The deployment contract's environment: ``[contract.env]`` and each role's ``env``.

A value is a ``str.format`` template of the per-host fields (``{node_id}``, ``{address}``,
``{peers}``, ``{role}``), ``{hosts}``, the variant's keys and the roles' names
(``{lb_addresses}``, see :mod:`._roles`), checked when the task is loaded. The cluster's
subnet is ``{subnet}`` (``198.18.5.0/24``) and ``{prefixlen}`` (``24``); ``{subnet[n]}``
is its ``n``-th address (``{subnet[200]}``: ``198.18.5.200``), ``n`` a number or a
variant key of numbers (``{subnet[vip_host]}``): an address no host holds, for a virtual IP.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import ConfigError
from ._roles import ROLE_FIELD, Role, reserved_names
from ._variants import CONTRACT_FIELDS, HOSTS

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ENV_VALUE = 1 << 16  # the kernel takes 128 KiB per environment string (E2BIG at exec)
SUBNET, PREFIXLEN = "subnet", "prefixlen"
INDEXED_RE = re.compile(r"^subnet\[([^\[\]]*)\]$")
MAX_SUBNET_INDEX = 254  # a cluster's subnet is a /24 (sandbox): its addresses 1-254


class Subnet:
    """``{subnet}`` in a contract value: the subnet as text, ``{subnet[n]}`` its ``n``-th
    address, ``n`` a number or a key of ``values`` (the variant's) holding one."""

    __slots__ = ("net", "values")

    def __init__(self, net: ipaddress.IPv4Network | str, values: Mapping[str, Any]) -> None:
        self.net = ipaddress.IPv4Network(net)
        self.values = values

    def __format__(self, spec: str) -> str:
        return format(str(self.net), spec)

    def __getitem__(self, index: int | str) -> str:
        n = int(self.values[index]) if isinstance(index, str) else index
        if not 1 <= n < self.net.num_addresses - 1:
            raise ConfigError(f"{{subnet[{index}]}} = {n}: not an address of {self.net}")
        return str(self.net.network_address + n)


def subnet_index_problem(index: str, variants: Mapping[str, Any]) -> str | None:
    """Why ``{subnet[index]}`` cannot name an address of every cluster (None: it can)."""
    values = [int(index)] if re.fullmatch("[0-9]{1,3}", index) else list(variants.get(index, ()))
    if not values:
        return f"{index!r} is neither a number nor a variants key"
    bad = [v for v in values if type(v) is not int or not 1 <= v <= MAX_SUBNET_INDEX]
    if bad:
        return f"an address's number is 1-{MAX_SUBNET_INDEX}, not {bad[0]!r}"
    return None


def contract_env(
    contract: Any,
    variants: Mapping[str, Any],
    roles: Sequence[Role],
    problems: list[str],
) -> dict[str, str]:
    """``[contract.env]``: the environment every host of the task's cluster gets (the dev
    hosts, for the agent's ``host_bash``; a grader may use it for production hosts too).
    A value may name the per-host fields, ``{hosts}``, the variant's keys and the roles'
    names (``_roles``)."""
    if not isinstance(contract, dict):
        problems.append("task.toml: [contract] must be a table")
        return {}
    for k in sorted(set(contract) - {"env"}):
        problems.append(f"task.toml: unknown key {k!r} in [contract] (known: env)")
    return env_table(contract.get("env", {}), "contract.env", variants, roles, problems)


def env_table(
    env: Any, where: str, variants: Mapping[str, Any], roles: Sequence[Role], problems: list[str]
) -> dict[str, str]:
    """A table of NAME = "value" whose values may name the known placeholders."""
    if not isinstance(env, dict):
        problems.append(f'task.toml: [{where}] must be a table of NAME = "value"')
        return {}
    out: dict[str, str] = {}
    known = dict.fromkeys((*CONTRACT_FIELDS, ROLE_FIELD, HOSTS, *variants))
    known.update(dict.fromkeys(reserved_names(roles)))
    fields = ", ".join([*(f"{{{f}}}" for f in known), "{subnet[n]}"])
    for k, v in env.items():
        at = f"task.toml: {where}.{k}"
        if not ENV_NAME_RE.match(k):
            problems.append(f"{at}: not a valid environment variable name")
            continue
        if isinstance(v, dict):
            problems.append(
                f"{at} is a table: a role's own variables go in [topology.roles.{k}.env]"
            )
            continue
        if not isinstance(v, str):
            problems.append(f'{at} must be a string, not {v!r} (quote numbers: "8080")')
            continue
        if "\0" in v or len(v) > MAX_ENV_VALUE:
            problems.append(
                f"{at} holds a NUL character, which no environment can"
                if "\0" in v
                else f"{at} is {len(v)} characters long; at most {MAX_ENV_VALUE}"
            )
            continue
        try:
            used = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(v)]
        except ValueError as exc:
            problems.append(f"{at} = {v!r}: {exc} (write a literal brace as {{{{ or }}}})")
            continue
        indexed = [m.group(1) for f, _, _ in used if f and (m := INDEXED_RE.match(f))]
        why = next(filter(None, (subnet_index_problem(i, variants) for i in indexed)), None)
        if why:
            problems.append(f"{at} = {v!r}: {{subnet[...]}}: {why}")
            continue
        bad = [f for f, spec, conv in used if f is not None and (
            (f not in known and not INDEXED_RE.match(f)) or spec or conv)]  # fmt: skip
        if bad:
            problems.append(
                f"{at} = {v!r}: unknown placeholder {{{bad[0]}}} (known: {fields}; write a "
                "literal brace as {{ or }})"
            )
            continue
        out[k] = v
    return out
