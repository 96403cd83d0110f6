"""The deployment contract's environment: ``[contract.env]`` and each role's ``env``.

A value is a ``str.format`` template of the per-host fields (``{node_id}``, ``{address}``,
``{peers}``, ``{role}``), ``{hosts}``, the variant's keys and the roles' names
(``{lb_addresses}``, see :mod:`._roles`), checked when the task is loaded.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from ._roles import ROLE_FIELD, Role, reserved_names
from ._variants import CONTRACT_FIELDS, HOSTS

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ENV_VALUE = 1 << 16  # the kernel takes 128 KiB per environment string (E2BIG at exec)


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
    fields = ", ".join(f"{{{f}}}" for f in known)
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
        bad = [f for f, spec, conv in used if f is not None and (
            f not in known or spec or conv)]  # fmt: skip
        if bad:
            problems.append(
                f"{at} = {v!r}: unknown placeholder {{{bad[0]}}} (known: {fields}; write a "
                "literal brace as {{ or }})"
            )
            continue
        out[k] = v
    return out
