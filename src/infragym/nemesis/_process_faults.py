"""Faults on a host's processes: Crash (kill them all) and Pause (freeze them all)."""

from __future__ import annotations

from typing import Any

from ..sandbox import Cluster
from ._fault import OneHostFault
from ._target import FaultTarget, Pick


class Crash(OneHostFault):
    """Kill every process of a host (SIGKILL through its cgroup); heal restarts services.

    Crashes of one host overlap: each apply kills whatever runs, and services are restarted
    only when the last active crash of the host heals (if any of them asked for a restart).
    On a paused host the restart waits for the thaw.
    """

    kind = "crash"

    def __init__(
        self, host: str | FaultTarget | Pick, label: str | None = None, restart: bool = True
    ) -> None:
        super().__init__(host, label)
        self.restart = restart

    def _inflict(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.victim)
        state = self._state(cluster)
        with state.lock:
            state.crashes[self] = None
            killed = host.kill_all()
        return {"killed": killed}

    def _restore(self, cluster: Cluster) -> None:
        state = self._state(cluster)
        with state.lock:
            if self not in state.crashes:
                return
            if len(state.crashes) == 1:
                if self.restart or state.restart_wanted:
                    cluster.host(self.victim).restart()
                state.restart_wanted = False
            elif self.restart:
                state.restart_wanted = True
            del state.crashes[self]


class Pause(OneHostFault):
    """Freeze every process of a host (cgroup freezer); heal thaws them.

    Pauses of one host overlap: the host stays frozen until the last of them heals.
    """

    kind = "pause"

    def _inflict(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.victim)
        state = self._state(cluster)
        with state.lock:
            state.pauses[self] = None
            host.freeze()  # idempotent, so a retried or second pause is harmless
        return {}

    def _restore(self, cluster: Cluster) -> None:
        state = self._state(cluster)
        with state.lock:
            if self not in state.pauses:
                return
            if len(state.pauses) == 1:
                cluster.host(self.victim).thaw()
            del state.pauses[self]
