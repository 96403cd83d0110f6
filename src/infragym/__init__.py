"""infragym: RL environments that reward production-grade infrastructure engineering."""

import typing

from ._errors import (
    CapabilityError,
    ConfigError,
    HistoryError,
    InfraGymError,
    PrivilegeError,
    ProcessError,
    ResourceError,
)

__version__ = "0.1.0"

if typing.TYPE_CHECKING:
    from .env import Env


def make(name: str, **options: typing.Any) -> "Env":
    """The RL environment of task ``name``: see :mod:`infragym.env`.

    Imported on first use, so ``import infragym`` stays cheap for the CLI and the core.
    """
    from .env import make as _make

    return _make(name, **options)


__all__ = [
    "CapabilityError",
    "ConfigError",
    "HistoryError",
    "InfraGymError",
    "PrivilegeError",
    "ProcessError",
    "ResourceError",
    "__version__",
    "make",
]
