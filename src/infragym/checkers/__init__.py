"""Checkers: pure functions of a history giving pass / fail / unknown.

Each checker is a frozen dataclass with a ``name`` and ``check(history) -> CheckResult``.
Call it through :func:`run_checker` (or :func:`check_all`) so that a checker that raises
gives an unknown verdict instead of ending the run.

- :class:`Availability`: ok fraction per fault window and steady state;
  :func:`faulted_hosts`: the hosts a fault takes away (not judged on during it).
- :class:`Latency`: percentiles from intended start; unknown outcomes count as infinite.
- :class:`LostWrites`: acknowledged register writes missing from the final reads.
- :class:`StaleReads`: reads of overwritten, never-written or failed-write values.
- :class:`Linearizable`: per-key WGL search over read / write / cas.
- :func:`failover_time`: seconds from a fault's start to the first second at an SLO, for
  a window's (intended start, served) pairs (what Availability reports per window).
- :class:`LostInserts`, :class:`TotalInvariant`, :class:`DualPrimary`: a record store's
  acknowledged inserts missing at the end, an aggregate that must never change, and two
  nodes acknowledging writes at once.
- :class:`Recovery`: seconds from each heal to service again (the service as a whole,
  e.g. one host that cannot be available while it is crashed, but must come back).
"""

from ._availability import Availability, faulted_hosts
from ._base import Checker, CheckResult, Verdict, run_checker
from ._failover import FAILOVER_SPAN_S, failover_time
from ._latency import Latency
from ._linearizable import Linearizable
from ._lost_writes import LostWrites
from ._records import DualPrimary, LostInserts, TotalInvariant
from ._recovery import Recovery
from ._run import check_all
from ._stale_reads import StaleReads

__all__ = [
    "FAILOVER_SPAN_S",
    "Availability",
    "CheckResult",
    "Checker",
    "DualPrimary",
    "Latency",
    "Linearizable",
    "LostInserts",
    "LostWrites",
    "Recovery",
    "StaleReads",
    "TotalInvariant",
    "Verdict",
    "check_all",
    "failover_time",
    "faulted_hosts",
    "run_checker",
]
