"""The Debian packages a task's hosts need (``[requires] apt = [...]`` in ``task.toml``).

Hosts see the machine's ``/usr`` read-only, so a package installed on the machine (by
``./setup.sh``, which installs the packages of every built-in task) is on every host. A
task whose packages are missing is not ready: running, grading, validating or resetting an
Env for it fails at once with a :class:`~infragym.CapabilityError` that gives the one
command installing them, instead of grading a deployment that cannot start as a 0.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from .._errors import CapabilityError

# Debian policy 5.6.1: lowercase letters, digits, + - . ; at least two, starting alphanumeric
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_INSTALLED = "install ok installed"


def parse_requires(raw: Any, problems: list[str]) -> tuple[str, ...]:
    """``[requires]``: ``apt``, the Debian packages the task's hosts need."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        problems.append('task.toml: [requires] must be a table, e.g. apt = ["haproxy"]')
        return ()
    for k in sorted(set(raw) - {"apt"}):
        problems.append(f"task.toml: unknown key {k!r} in [requires] (known: apt)")
    apt = raw.get("apt", [])
    if not isinstance(apt, list):
        problems.append(f"task.toml: requires.apt must be a list of package names, not {apt!r}")
        return ()
    out: list[str] = []
    for name in apt:
        if not isinstance(name, str) or not PACKAGE_RE.match(name):
            problems.append(
                f"task.toml: requires.apt: {name!r} is not a Debian package name "
                '(lowercase letters, digits, + - . ; e.g. "haproxy")'
            )
        elif name in out:
            problems.append(f"task.toml: requires.apt names {name!r} twice")
        else:
            out.append(name)
    return tuple(out)


def missing_packages(names: Iterable[str]) -> tuple[str, ...]:
    """The packages of ``names`` that dpkg does not list as installed, in order."""
    names = tuple(names)
    if not names:
        return ()
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package}\t${Status}\n", *names],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return names  # not a Debian machine: nothing can be known to be installed
    installed: set[str] = set()
    for line in proc.stdout.splitlines():
        pkg, _, status = line.partition("\t")
        if status.strip() == _INSTALLED:
            installed.add(pkg.split(":")[0])
    return tuple(n for n in names if n not in installed)


def install_command(names: Sequence[str]) -> str:
    """The one command that installs ``names`` (as root)."""
    return "apt-get install -y --no-install-recommends " + " ".join(map(shlex.quote, names))


def require_packages(task: str, names: Iterable[str]) -> None:
    """A :class:`CapabilityError` naming the command to run if any of ``names`` is missing."""
    missing = missing_packages(names)
    if missing:
        raise CapabilityError(
            f"task {task} needs Debian packages that are not installed on this machine: "
            f"{', '.join(missing)}. Install them (as root) with: {install_command(missing)} "
            "(./setup.sh installs the packages of every built-in task)"
        )
