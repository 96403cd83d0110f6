"""The exception tree of infragym.

::

    InfraGymError                  root: every error the platform raises on purpose
    ├── PrivilegeError             needs root / a capability the process lacks
    ├── CapabilityError            this machine cannot do what was asked (e.g. a fault kind)
    ├── ConfigError                invalid input: a topology, a fault spec, a schedule
    ├── ResourceError              a host, namespace, cgroup or process could not be made
    │   └── ProcessError           a process on a host failed to start or misbehaved
    └── HistoryError               a history file is malformed

Messages say what went wrong and what to do about it.
"""

from __future__ import annotations


class InfraGymError(Exception):
    """Root of every error infragym raises on purpose."""


class PrivilegeError(InfraGymError):
    """The operation needs root (or a capability) that this process does not have."""


class CapabilityError(InfraGymError):
    """This machine cannot perform the requested operation (e.g. an unsupported fault)."""


class ConfigError(InfraGymError):
    """Invalid input: a topology, a fault specification, a schedule, a rubric."""


class ResourceError(InfraGymError):
    """A host, namespace, cgroup, mount or process could not be created or removed."""


class ProcessError(ResourceError):
    """A process on a host could not be started, or failed in a way the caller must know."""


class HistoryError(InfraGymError):
    """A stored history is malformed and cannot be checked."""
