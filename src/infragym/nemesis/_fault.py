"""The fault lifecycle: the :class:`Fault` base class, its input checks, and FaultSpec.

A fault has ``apply`` and ``heal`` and knows which hosts it touches. ``apply`` and
``heal`` are synchronous and fast (milliseconds); the nemesis runs them in a worker thread
so a running workload's event loop never stalls while a fault is applied. Healing a fault
that is not active is a no-op, so heals can be retried.
"""

from __future__ import annotations

import asyncio
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from ..sandbox import Cluster
from ._host_state import HostFaults, host_faults
from ._target import FaultTarget, Pick, as_target


class Fault(ABC):
    """A fault with a lifecycle. ``kind`` names the family, ``label`` this instance."""

    kind: str = "fault"

    def __init__(self, label: str | None = None) -> None:
        self.label = label or self.kind
        self.applied = False

    @abstractmethod
    def targets(self) -> tuple[str, ...]:
        """The hosts this fault acts on (for the timeline and availability windows)."""

    @abstractmethod
    def apply(self, cluster: Cluster) -> dict[str, Any]:
        """Inflict the fault; return details for the timeline."""

    @abstractmethod
    def heal(self, cluster: Cluster) -> None:
        """Undo the fault. Must be safe to call when apply failed midway."""

    def heal_detail(self) -> dict[str, Any]:
        """What the heal's timeline event records of what the fault did while it was
        active (a runaway log: the bytes it wrote); nothing for most faults."""
        return {}

    async def apply_async(self, cluster: Cluster) -> dict[str, Any]:
        """Apply without blocking the event loop that drives the workload."""
        return await asyncio.to_thread(self.apply, cluster)

    async def heal_async(self, cluster: Cluster) -> None:
        await asyncio.to_thread(self.heal, cluster)

    def describe(self) -> str:
        return f"{self.kind}({', '.join(self.targets())})"

    def _bad(self, what: str) -> ConfigError:
        return ConfigError(f"{self.kind} fault {self.label!r}: {what}")

    def _number(self, name: str, value: object) -> float:
        """``value`` as a finite float, or a ConfigError naming this fault and ``name``."""
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                x = float(value)
            except (OverflowError, ValueError):
                x = math.nan
            if math.isfinite(x):
                return x
        raise self._bad(f"{name} must be a finite number, not {value!r}")

    def _one_host(self, host: object) -> str:
        if not isinstance(host, str):
            raise self._bad(
                f"{self.kind} takes exactly one host, not {host!r}; give one fault per host"
            )
        return host

    def _hosts(self, hosts: object) -> tuple[str, ...]:
        if isinstance(hosts, str) or not isinstance(hosts, Iterable):
            raise self._bad(f"hosts must be a list of host names, not {hosts!r}")
        out = tuple(hosts)
        if not out:
            raise self._bad("needs at least one host")
        if not all(isinstance(h, str) for h in out) or len(set(out)) != len(out):
            raise self._bad(f"hosts must be distinct host names, not {list(out)}")
        return out


class OneHostFault(Fault):
    """A fault of exactly one host, ``host``, acting on a resource the host has only one of.

    ``host`` is a host's name, or a fire-time :class:`~._target.FaultTarget` (or a function of
    the cluster returning a name): each apply asks it which host to hit then, records its
    choice (``targets()``, the event's detail ``target``) and the heal acts on that host;
    a target that names no host skips the fault. Subclasses implement ``_inflict`` and
    ``_restore`` on ``self.host``.

    Such faults share the host's record (:func:`._host_state.host_faults`) so that faults of
    one host compose.
    """

    def __init__(self, host: str | FaultTarget | Pick, label: str | None = None) -> None:
        super().__init__(label)
        self.target = as_target(host)
        self.host: str | None = None if self.target else self._one_host(host)

    def targets(self) -> tuple[str, ...]:
        return () if self.host is None else (self.host,)

    def describe(self) -> str:
        if self.host is None and self.target is not None:
            return f"{self.kind}({self.target.name})"
        return super().describe()

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        if self.target is None:
            return self._inflict(cluster)
        self.host, detail = self.target.choose(cluster)
        if self.host is None:
            return detail
        return {**detail, **self._inflict(cluster)}

    def heal(self, cluster: Cluster) -> None:
        if self.host is not None:
            self._restore(cluster)

    @abstractmethod
    def _inflict(self, cluster: Cluster) -> dict[str, Any]:
        """Inflict the fault on ``self.host``; return details for the timeline."""

    @abstractmethod
    def _restore(self, cluster: Cluster) -> None:
        """Undo the fault on ``self.host`` (safe when its apply failed midway)."""

    @property
    def victim(self) -> str:
        """The host the fault acts on (the one its last apply chose)."""
        if self.host is None:
            raise self._bad("its fire-time target has not chosen a host yet")
        return self.host

    def _state(self, cluster: Cluster) -> HostFaults:
        """What the faults of this host have done to it (take ``lock`` to read or change)."""
        return host_faults(cluster, self.victim)


@dataclass(frozen=True)
class FaultSpec:
    """A serialisable description of a fault, as schedules hold them."""

    kind: str
    targets: tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)
