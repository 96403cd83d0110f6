"""Faults, seeded schedules, the nemesis that plays them, and the capability probe.

A fault is a package in the Jepsen sense: the fault itself (``apply`` / ``heal``), a
schedule that says when, and a final heal that always runs.
"""

from ._balanced import balanced_schedule, taken_away
from ._clock_skew import ClockSkew
from ._disk_full import DiskFull
from ._doctor import Capability, fault_support, probe, require_supported
from ._fault import Fault, FaultSpec
from ._latency import Latency
from ._network_faults import Bandwidth, PacketLoss, Partition
from ._process_faults import Crash, Pause
from ._runner import Nemesis
from ._schedule import FAULT_KINDS, Schedule, ScheduledFault, build_fault, random_schedule
from ._sweep import SWEEP_KINDS, sweep_length, sweep_schedule
from ._target import FaultTarget, arp_answerers, host_addresses

__all__ = [
    "FAULT_KINDS",
    "SWEEP_KINDS",
    "Bandwidth",
    "Capability",
    "ClockSkew",
    "Crash",
    "DiskFull",
    "Fault",
    "FaultSpec",
    "FaultTarget",
    "Latency",
    "Nemesis",
    "PacketLoss",
    "Partition",
    "Pause",
    "Schedule",
    "ScheduledFault",
    "arp_answerers",
    "balanced_schedule",
    "build_fault",
    "fault_support",
    "host_addresses",
    "probe",
    "random_schedule",
    "require_supported",
    "sweep_length",
    "sweep_schedule",
    "taken_away",
]
