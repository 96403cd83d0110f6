"""Hosts and clusters: network namespaces, mount views, cgroups and processes.

The sandbox knows nothing of tasks, faults or workloads; every layer above builds on it.
"""

from ._cgroup import Limits, cgroup_v1_available
from ._cleanup import CleanupReport, cleanup
from ._cluster import MAX_HOSTS, Cluster
from ._host import HOST_PYTHON, Host, HostProcess, ServiceSpec
from ._lifecycle import install_handlers
from ._lifecycle import run as run_interruptible
from ._tree import CopyReport, TreeError, copy_tree, remove_tree, walk_tree

__all__ = [
    "HOST_PYTHON",
    "MAX_HOSTS",
    "CleanupReport",
    "Cluster",
    "CopyReport",
    "Host",
    "HostProcess",
    "Limits",
    "ServiceSpec",
    "TreeError",
    "cgroup_v1_available",
    "cleanup",
    "copy_tree",
    "install_handlers",
    "remove_tree",
    "run_interruptible",
    "walk_tree",
]
