"""The checks of a cluster's options: its hosts' names and the per-host ones."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TypeVar

from .._errors import ConfigError
from ._cgroup import Limits
from ._network import CLIENT

MAX_HOSTS = 16
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
T = TypeVar("T")


def _known(what: str, given: Iterable[object], names: list[str]) -> None:
    unknown = sorted(str(n) for n in given if n not in names)
    if unknown:
        raise ConfigError(
            f"{what} names hosts this cluster does not have: {', '.join(unknown)} "
            f"(hosts: {', '.join(names)})"
        )


def validate_names(hosts: int | Sequence[str]) -> list[str]:
    if isinstance(hosts, str) or not isinstance(hosts, (int, Sequence)):
        raise ConfigError(f"hosts must be a number of hosts or a list of names, not {hosts!r}")
    if isinstance(hosts, bool):
        raise ConfigError(f"hosts must be a number of hosts or a list of names, not {hosts!r}")
    if isinstance(hosts, int):
        if not 1 <= hosts <= MAX_HOSTS:
            raise ConfigError(f"a cluster has 1 to {MAX_HOSTS} hosts, not {hosts}")
        return [f"n{i + 1}" for i in range(hosts)]
    names = list(hosts)
    if not 1 <= len(names) <= MAX_HOSTS:
        raise ConfigError(f"a cluster has 1 to {MAX_HOSTS} hosts, not {len(names)}")
    for n in names:
        if not isinstance(n, str) or not NAME_RE.match(n):
            raise ConfigError(
                f"invalid host name {n!r}: use 1-8 lowercase letters or digits, "
                "starting with a letter"
            )
    if CLIENT in names:
        raise ConfigError(f"{CLIENT!r} is reserved for the cluster's client namespace")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"duplicate host names: {', '.join(sorted(dup))}")
    return names


def validate_net_admin(net_admin: object, names: list[str]) -> frozenset[str]:
    if isinstance(net_admin, bool):
        return frozenset(names) if net_admin else frozenset()
    if isinstance(net_admin, str) or not isinstance(net_admin, Collection):
        raise ConfigError(
            f"net_admin must be True, False or a list of host names, not {net_admin!r}"
        )
    _known("net_admin", net_admin, names)
    return frozenset(str(n) for n in net_admin)


def per_host(
    what: str, given: Mapping[str, T] | None, names: list[str], check: Callable[[T], object]
) -> dict[str, T]:
    """A per-host option: a mapping of some of the hosts' names to values ``check`` accepts."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{what} must map host names to values, not {given!r}")
    _known(what, given, names)
    for v in given.values():
        check(v)
    return dict(given)


def check_size(what: str) -> Callable[[object], None]:
    def check(size: object) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1 << 20:
            raise ConfigError(f"{what} must be a whole number of bytes >= 1 MiB, not {size!r}")

    return check


def check_limits(limits: object) -> None:
    if not isinstance(limits, Limits):
        raise ConfigError(f"limits must be a Limits, not {limits!r}")
