"""infragym: RL environments that reward production-grade infrastructure engineering."""

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

__all__ = [
    "CapabilityError",
    "ConfigError",
    "HistoryError",
    "InfraGymError",
    "PrivilegeError",
    "ProcessError",
    "ResourceError",
    "__version__",
]
