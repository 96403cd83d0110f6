"""Hosts and clusters: network namespaces, mount views, cgroups and processes.

The sandbox knows nothing of tasks, faults or workloads; every layer above builds on it.
"""

from ._cgroup import Limits, cgroup_v1_available
from ._cleanup import CleanupReport, cleanup
from ._cluster import MAX_HOSTS, Cluster
from ._host import HOST_PYTHON, Host, HostProcess, ServiceSpec

__all__ = [
    "HOST_PYTHON",
    "MAX_HOSTS",
    "CleanupReport",
    "Cluster",
    "Host",
    "HostProcess",
    "Limits",
    "ServiceSpec",
    "cgroup_v1_available",
    "cleanup",
]
