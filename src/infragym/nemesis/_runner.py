"""The nemesis: applies faults to a live cluster, records the timeline, always heals.

Every apply and heal is stamped on the run's shared :class:`~infragym.history.Clock` and
appended to the history as a :class:`~infragym.history.FaultEvent`. Whatever happens (an
exception, a cancelled task, Ctrl-C), leaving the ``async with`` block heals every fault
still active, in reverse order, and then runs a safety sweep that thaws every host and
restarts crashed services.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from ..history import Clock, FaultAction, FaultEvent, History
from ..sandbox import Cluster
from ._faults import Fault
from ._schedule import Schedule, build_fault


class Nemesis:
    """Inflicts faults on ``cluster`` and records them into ``history``."""

    def __init__(
        self, cluster: Cluster, history: History, clock: Clock, check_capabilities: bool = True
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.clock = clock
        self.check_capabilities = check_capabilities
        self.active: dict[str, Fault] = {}
        self.errors: list[str] = []

    async def __aenter__(self) -> Nemesis:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.final_heal()

    def _record(self, fault: Fault, action: FaultAction, detail: dict[str, Any]) -> None:
        self.history.record_fault(
            FaultEvent(self.clock.now(), fault.kind, action, fault.label, fault.targets(), detail)
        )

    async def apply(self, fault: Fault) -> None:
        if fault.label in self.active:
            raise ValueError(f"a fault labelled {fault.label!r} is already active")
        if self.check_capabilities:
            from ._doctor import require_supported

            await asyncio.to_thread(require_supported, [fault.kind])
        self.active[fault.label] = fault
        try:
            detail = await fault.apply_async(self.cluster)
        except BaseException:
            # a half-applied fault is still healed (heal tolerates partial state)
            self._record(fault, FaultAction.APPLY, {"error": "apply failed"})
            raise
        fault.applied = True
        self._record(fault, FaultAction.APPLY, detail)

    async def heal(self, fault: Fault) -> None:
        if self.active.pop(fault.label, None) is None:
            return
        try:
            await fault.heal_async(self.cluster)
        finally:
            fault.applied = False
            self._record(fault, FaultAction.HEAL, {})

    async def run(self, schedule: Schedule) -> None:
        """Play ``schedule`` from now: apply each fault at its time and heal it after."""
        if self.check_capabilities:
            from ._doctor import require_supported

            await asyncio.to_thread(require_supported, sorted(schedule.kinds()))
        names = self.cluster.names
        faults = [(sf, build_fault(sf.spec, sf.label, names)) for sf in schedule.faults]
        t0 = self.clock.now()
        events: list[tuple[float, int, str, Fault]] = []
        for i, (sf, f) in enumerate(faults):
            events.append((sf.at, 2 * i + 1, "apply", f))
            events.append((sf.at + sf.duration, 2 * i, "heal", f))
        events.sort(key=lambda e: (e[0], e[1]))
        for at, _, what, f in events:
            delay = t0 + at - self.clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if what == "apply":
                await self.apply(f)
            else:
                await self.heal(f)

    async def final_heal(self) -> None:
        """Heal every active fault (newest first), then make sure every host is whole."""
        for label in reversed(list(self.active)):
            fault = self.active[label]
            try:
                await asyncio.shield(self.heal(fault))
            except Exception as exc:
                self.errors.append(f"healing {label}: {exc}")
        for host in self.cluster.hosts:
            with contextlib.suppress(Exception):
                if host.cgroup.frozen():
                    await asyncio.to_thread(host.thaw)
