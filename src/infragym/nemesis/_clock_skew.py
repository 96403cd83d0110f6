"""ClockSkew: a host's clock moved through libfaketime."""

from __future__ import annotations

from typing import Any

from .._errors import CapabilityError
from ..sandbox import Cluster
from ._fault import OneHostFault
from ._target import FaultTarget, Pick

MAX_CLOCK_OFFSET_S = 10.0**9


class ClockSkew(OneHostFault):
    """Move a host's clock by ``offset_s`` through libfaketime (cluster built with faketime).

    Skews of one host overlap: the clock follows the most recently applied skew still
    active, and returns to true time when none is.
    """

    kind = "clock-skew"

    def __init__(
        self, host: str | FaultTarget | Pick, offset_s: float, label: str | None = None
    ) -> None:
        super().__init__(host, label)
        offset = self._number("offset_s", offset_s)
        if offset == 0:
            raise self._bad("a clock skew of 0 s does nothing; give a non-zero offset_s")
        if abs(offset) > MAX_CLOCK_OFFSET_S:
            raise self._bad(f"offset_s must be within +-{MAX_CLOCK_OFFSET_S:.0f} s, not {offset}")
        self.offset_s = offset

    def _inflict(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.victim)
        if not host.faketime:
            raise CapabilityError(
                f"clock skew on {self.host}: the cluster was built without libfaketime; "
                "build the cluster with faketime=True (Cluster(..., faketime=True))"
            )
        state = self._state(cluster)
        with state.lock:
            state.clock.pop(self, None)
            state.clock[self] = self.offset_s
            host.set_clock_offset(self.offset_s)
        return {"offset_s": self.offset_s}

    def _restore(self, cluster: Cluster) -> None:
        state = self._state(cluster)
        with state.lock:
            if self not in state.clock:
                return
            rest = [o for f, o in state.clock.items() if f is not self]
            cluster.host(self.victim).set_clock_offset(rest[-1] if rest else 0.0)
            del state.clock[self]
