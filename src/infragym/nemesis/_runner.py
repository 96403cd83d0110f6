"""The nemesis: applies faults to a live cluster, records the timeline, always heals.

Every apply and heal is stamped on the run's shared :class:`~infragym.history.Clock` and
appended to the history as a :class:`~infragym.history.FaultEvent`; a HEAL event is
recorded only once the heal succeeded. A heal that fails is kept in ``active``, noted in
``errors`` and retried by the final heal.

Whatever happens (an exception, a cancelled task, Ctrl-C), leaving the ``async with`` block
runs :meth:`Nemesis.final_heal`: it heals every fault still active, newest first, and
retries those that failed once; cancelling it does not interrupt it. Crashed services are
restarted by each crash's own heal. Then a sweep thaws any host left frozen that no active
pause explains. If a fault still cannot be healed, the final heal raises ResourceError:
the cluster is not whole, so nothing measured on it afterwards can be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .._errors import CapabilityError, ConfigError, ResourceError
from ..history import Clock, FaultAction, FaultEvent, History
from ..sandbox import Cluster
from ._fault import Fault
from ._host_state import paused_by_faults
from ._kinds import KINDS
from ._schedule import MAX_FAULTS, Schedule, build_fault
from ._target import FaultTarget

_RETRY_DELAY_S = 0.1


class Nemesis:
    """Inflicts faults on ``cluster`` and records them into ``history``. ``targets`` are
    the fire-time targets a schedule may name as ``"@name"`` (:mod:`._target`)."""

    def __init__(
        self,
        cluster: Cluster,
        history: History,
        clock: Clock,
        check_capabilities: bool = True,
        targets: Mapping[str, FaultTarget] | None = None,
    ) -> None:
        self.cluster = cluster
        self.targets = dict(targets or {})
        for name, t in self.targets.items():
            if not isinstance(t, FaultTarget):
                raise ConfigError(f"fire-time target {name!r} must be a FaultTarget, not {t!r}")
        self.history = history
        self.clock = clock
        self.check_capabilities = check_capabilities
        self.active: dict[str, Fault] = {}
        self.errors: list[str] = []
        self._healing: dict[str, asyncio.Task[None]] = {}
        self._applying: dict[str, asyncio.Task[dict[str, Any]]] = {}
        # when run()'s schedule meant each (label, action) to happen: recorded with the
        # event as detail["scheduled"], so grading can tell a nemesis that fell behind
        self._scheduled: dict[tuple[str, FaultAction], float] = {}
        self._prepared: Schedule | None = None  # checked by prepare(): run() starts at once

    async def __aenter__(self) -> Nemesis:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.final_heal()

    def _record(self, fault: Fault, action: FaultAction, detail: dict[str, Any]) -> None:
        scheduled = self._scheduled.pop((fault.label, action), None)
        if scheduled is not None:
            detail = {**detail, "scheduled": scheduled}
        self.history.record_fault(
            FaultEvent(self.clock.now(), fault.kind, action, fault.label, fault.targets(), detail)
        )

    async def _check_supported(self, kinds: set[str]) -> None:
        """Raise CapabilityError before any fault is applied if one of ``kinds`` cannot run."""
        for kind in sorted(kinds & KINDS.keys()):
            problem = KINDS[kind].cluster_problem(self.cluster)
            if problem:
                raise CapabilityError(problem)
        if self.check_capabilities:
            from ._doctor import require_supported

            await asyncio.to_thread(require_supported, sorted(kinds))

    async def apply(self, fault: Fault) -> None:
        """Apply ``fault`` now; it stays active (and is healed) even if its apply fails.

        A label already active is a ConfigError; a fault this machine or cluster cannot
        inflict is a CapabilityError raised before anything is done.
        """
        await self._check_supported({fault.kind})
        # check and insert with no await in between, so two concurrent applies of one
        # label cannot both pass
        if fault.label in self.active:
            raise ConfigError(
                f"a fault labelled {fault.label!r} is already active; give each fault its own label"
            )
        self.active[fault.label] = fault
        # the apply runs to its end even if we are cancelled, and a heal waits for it, so a
        # heal never races an apply still in flight
        task = asyncio.create_task(fault.apply_async(self.cluster))
        self._applying[fault.label] = task
        task.add_done_callback(lambda t: _forget(self._applying, fault.label, t))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        try:
            detail = await asyncio.shield(task)
        except BaseException:
            # a half-applied fault stays active and is healed (heal tolerates partial state)
            self._record(fault, FaultAction.APPLY, {"error": "apply failed"})
            raise
        fault.applied = True
        self._record(fault, FaultAction.APPLY, detail)

    def _heal_task(self, fault: Fault) -> asyncio.Task[None]:
        """The one heal in flight for ``fault``: started if none is, shared otherwise."""
        task = self._healing.get(fault.label)
        if task is None:
            task = asyncio.create_task(self._heal_once(fault))
            # a heal whose awaiter was cancelled still reports through ``errors``
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._healing[fault.label] = task
        return task

    async def _heal_once(self, fault: Fault) -> None:
        me = asyncio.current_task()  # not in ``finally``: a closed coroutine has no loop
        try:
            applying = self._applying.get(fault.label)
            if applying is not None:
                await asyncio.wait([applying])
            await fault.heal_async(self.cluster)
        except BaseException as exc:
            self.errors.append(f"healing {fault.label}: {exc!r}")
            raise
        finally:
            _forget(self._healing, fault.label, me)
        fault.applied = False
        if self.active.get(fault.label) is fault:
            del self.active[fault.label]
        self._record(fault, FaultAction.HEAL, fault.heal_detail())

    async def heal(self, fault: Fault) -> None:
        """Heal ``fault`` if it is active; raise if the heal fails (it then stays active).

        Cancelling the caller does not interrupt the heal itself, which runs to its end.
        """
        if self.active.get(fault.label) is not fault:
            return
        await asyncio.shield(self._heal_task(fault))

    async def prepare(self, schedule: Schedule) -> None:
        """Check ``schedule`` (finite times, distinct labels) and that this machine and
        cluster can inflict its faults; raises before anything is applied. Called before
        a load starts, it keeps the checks (seconds on a busy machine) out of :meth:`run`'s
        start (they are cached)."""
        _check_schedule(schedule)
        await self._check_supported(schedule.kinds())
        self._prepared = schedule

    async def run(self, schedule: Schedule, *, at: float | None = None) -> None:
        """Play ``schedule`` from ``at`` on the nemesis's clock (default: now): apply each
        fault at its time and heal it after. A load started with the same ``at``
        (``Runner.run``) stays in step with it; a fault applied late shows in its event's
        ``scheduled`` time (the health check's fault lag).

        At equal times, heals of earlier faults come before applies, and a fault's own heal
        always comes after its apply (also for a fault of zero duration). The whole schedule
        is checked first (finite times, distinct labels, buildable specs, capabilities), so
        a bad schedule fails before any fault is applied.
        """
        if schedule is not self._prepared:
            await self.prepare(schedule)
        names = self.cluster.names
        faults = [
            (sf, build_fault(sf.spec, sf.label, names, self.targets)) for sf in schedule.faults
        ]
        t0 = self.clock.now() if at is None else at
        events: list[tuple[float, int, int, Fault]] = []
        for i, (sf, f) in enumerate(faults):
            end = sf.at + sf.duration
            events.append((sf.at, 1, i, f))
            # 0: heals of faults applied earlier; 2: heals at the instant of their own apply
            events.append((end, 0, i, f) if end > sf.at else (sf.at, 2, i, f))
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        for when, phase, _, f in events:
            delay = t0 + when - self.clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            action = FaultAction.APPLY if phase == 1 else FaultAction.HEAL
            self._scheduled[(f.label, action)] = t0 + when
            if phase == 1:
                await self.apply(f)
            else:
                # a failed heal is in ``errors`` and stays active: the timeline shows the
                # fault lasting until the final heal retries it (or raises)
                with contextlib.suppress(Exception):
                    await self.heal(f)

    async def _settle(self, fault: Fault) -> tuple[BaseException | None, BaseException | None]:
        """Heal ``fault`` to the end whatever cancels us: (heal error, cancellation)."""
        interrupt: BaseException | None = None
        task = self._heal_task(fault)
        while not task.done():
            try:
                await asyncio.wait([task])
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit) as exc:
                # an interruption: wait again, the heal goes on. Anything else (the
                # coroutine being closed with no loop to run on, "no running event loop")
                # would fail the same way on every try: it ends the wait
                interrupt = interrupt or exc
        if task.cancelled():
            return asyncio.CancelledError(f"the heal of {fault.label} was cancelled"), interrupt
        return task.exception(), interrupt

    async def final_heal(self) -> None:
        """Heal every active fault (newest first), retry failures, then thaw stray freezes.

        Goes through every fault even when cancelled meanwhile, and re-raises the first
        cancellation (or other BaseException) at the end. A fault that cannot be healed
        after the retry is a ResourceError, raised after every fault has been attempted.
        """
        interrupt: BaseException | None = None
        last_error: dict[str, BaseException] = {}
        for attempt in range(2):
            if attempt and self.active:
                try:
                    await asyncio.sleep(_RETRY_DELAY_S)
                except BaseException as exc:
                    interrupt = interrupt or exc
            for label in reversed(list(self.active)):
                fault = self.active.get(label)
                if fault is None:
                    continue
                error, cancelled = await self._settle(fault)
                interrupt = interrupt or cancelled
                if error is not None:
                    last_error[label] = error
                    if not isinstance(error, Exception):
                        interrupt = interrupt or error
        for host in self.cluster.hosts:
            try:
                if host.cgroup.frozen() and not paused_by_faults(self.cluster, host.name):
                    await asyncio.to_thread(host.thaw)
            except Exception as exc:
                self.errors.append(f"thawing {host.name}: {exc!r}")
            except BaseException as exc:
                interrupt = interrupt or exc
        failure: ResourceError | None = None
        if self.active:
            failure = ResourceError(
                "the final heal could not heal "
                + "; ".join(f"{label}: {last_error.get(label)!r}" for label in self.active)
                + "; the cluster is not whole, so this run's measurements are not "
                "trustworthy (see Nemesis.errors)"
            )
        if interrupt is not None:
            if failure is not None:
                with contextlib.suppress(Exception):
                    interrupt.__context__ = failure
            raise interrupt
        if failure is not None:
            raise failure


def _forget(tasks: dict[str, Any], label: str, task: object) -> None:
    if tasks.get(label) is task:
        del tasks[label]


def _check_schedule(schedule: Schedule) -> None:
    if len(schedule.faults) > MAX_FAULTS:
        raise ConfigError(
            f"a schedule holds at most {MAX_FAULTS} faults, not {len(schedule.faults)}"
        )
    labels: set[str] = set()
    for sf in schedule.faults:
        if not (
            isinstance(sf.at, int | float)
            and isinstance(sf.duration, int | float)
            and math.isfinite(sf.at)
            and math.isfinite(sf.duration)
            and sf.at >= 0
            and sf.duration >= 0
        ):
            raise ConfigError(
                f"fault {sf.label}: at and duration must be finite and >= 0 "
                f"(got at={sf.at!r}, duration={sf.duration!r})"
            )
        if sf.label in labels:
            raise ConfigError(
                f"two faults of the schedule are labelled {sf.label!r}; use Schedule.compose "
                "or give each its own label"
            )
        labels.add(sf.label)
