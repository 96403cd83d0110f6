"""Faults, seeded schedules, the nemesis that plays them, the capability probe, and a
colleague who drifts hosts from their declared configuration (:class:`Colleague`).

A fault is a package in the Jepsen sense: the fault itself (``apply`` / ``heal``), a
schedule that says when, and a final heal that always runs.
"""

from ..sandbox.lowlevel import descends_from, parent_pid
from ._balanced import balanced_schedule, taken_away
from ._clock_skew import ClockSkew
from ._data_faults import DAMAGE_KINDS, DamagedData, RunawayLog
from ._disk_full import DiskFull
from ._doctor import Capability, fault_support, probe, require_supported
from ._drift import (
    DRIFT_FAULT,
    DRIFT_KINDS,
    Colleague,
    Drift,
    DriftTargets,
    drift_schedule,
    listener_pids,
    listening_ports,
    service_pids,
)
from ._fault import Fault, FaultSpec
from ._latency import Latency
from ._network_faults import Bandwidth, PacketLoss, Partition
from ._process_faults import Crash, Pause
from ._runner import Nemesis
from ._schedule import FAULT_KINDS, Schedule, ScheduledFault, build_fault, random_schedule
from ._sweep import SWEEP_KINDS, sweep_length, sweep_schedule
from ._target import FaultTarget, arp_answerers, host_addresses

__all__ = [
    "DAMAGE_KINDS",
    "DRIFT_FAULT",
    "DRIFT_KINDS",
    "FAULT_KINDS",
    "SWEEP_KINDS",
    "Bandwidth",
    "Capability",
    "ClockSkew",
    "Colleague",
    "Crash",
    "DamagedData",
    "DiskFull",
    "Drift",
    "DriftTargets",
    "Fault",
    "FaultSpec",
    "FaultTarget",
    "Latency",
    "Nemesis",
    "PacketLoss",
    "Partition",
    "Pause",
    "RunawayLog",
    "Schedule",
    "ScheduledFault",
    "arp_answerers",
    "balanced_schedule",
    "build_fault",
    "descends_from",
    "drift_schedule",
    "fault_support",
    "host_addresses",
    "listener_pids",
    "listening_ports",
    "parent_pid",
    "probe",
    "random_schedule",
    "require_supported",
    "service_pids",
    "sweep_length",
    "sweep_schedule",
    "taken_away",
]
