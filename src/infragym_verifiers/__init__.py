"""The verifiers plugin id ``infragym-verifiers``: verifiers imports a taskset, harness or
env by a bare module name, so this top-level module re-exports
:mod:`infragym.integrations.verifiers`, which holds the code and its docs."""

from infragym.integrations.verifiers import (
    InfraGymEnv,
    InfraGymHarness,
    InfraGymTaskset,
)

# verifiers looks here for exactly one Taskset, one Harness and one Env subclass
__all__ = ["InfraGymEnv", "InfraGymHarness", "InfraGymTaskset"]
