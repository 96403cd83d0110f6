"""Hosts and clusters: network namespaces, mount views, cgroups and processes; and the
agent's half: the workstation sandbox its commands run in (:class:`Workstation`,
:class:`AgentSandbox`, :class:`ExecResult`).

The sandbox knows nothing of tasks, faults or workloads; every layer above builds on it.
"""

from ._agent_sandbox import WORKSPACE, AgentSandbox, ExecResult
from ._cgroup import Limits, cgroup_v1_available
from ._cleanup import CleanupReport, cleanup
from ._cluster import Cluster
from ._host import HOST_PYTHON, Host, HostProcess, ServiceSpec
from ._lifecycle import install_handlers
from ._lifecycle import run as run_interruptible
from ._options import MAX_HOSTS
from ._tree import CopyReport, TreeError, copy_tree, remove_tree, walk_tree
from ._workstation import DEFAULT_LIMITS as WORKSTATION_LIMITS
from ._workstation import Workstation

__all__ = [
    "HOST_PYTHON",
    "MAX_HOSTS",
    "WORKSPACE",
    "WORKSTATION_LIMITS",
    "AgentSandbox",
    "CleanupReport",
    "Cluster",
    "CopyReport",
    "ExecResult",
    "Host",
    "HostProcess",
    "Limits",
    "ServiceSpec",
    "TreeError",
    "Workstation",
    "cgroup_v1_available",
    "cleanup",
    "copy_tree",
    "install_handlers",
    "remove_tree",
    "run_interruptible",
    "walk_tree",
]
