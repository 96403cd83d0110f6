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
    from collections.abc import Callable, Sequence

    from .agent import Agent
    from .env import Env
    from .runner import EpisodeOutcome


def make(name: str, **options: typing.Any) -> "Env":
    """The RL environment of task ``name``: see :mod:`infragym.env`.

    Imported on first use, so ``import infragym`` stays cheap for the CLI and the core.
    """
    from .env import make as _make

    return _make(name, **options)


async def rollout_many(
    task: str,
    agent_factory: "Callable[[], Agent]",
    seeds: "Sequence[int]",
    max_concurrency: int | None = None,
    **kwargs: typing.Any,
) -> "list[EpisodeOutcome]":
    """One episode per seed, ``max_concurrency`` at a time (default: as many gradings as
    fit the machine): see :mod:`infragym.runner`."""
    from .runner import rollout_many as _rollout_many

    return await _rollout_many(task, agent_factory, seeds, max_concurrency, **kwargs)


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
    "rollout_many",
]
