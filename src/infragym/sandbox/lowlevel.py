"""The sandbox's low-level helpers that the layers above need to act on hosts from
outside: commands in the machine's namespace, the switch's chains (nft rules) and
ports, entering a host's network namespace, the link proxy's namespace, resizing its
tmpfs, the faketime library, the platform's state directory and a process's identity
(pid and start time, to tell a live process from a reused pid) and its state and
parent from ``/proc/<pid>/stat``.
Public so that nemesis, grading's admission control and the doctor need no private module
of the sandbox; not part of the task author's API.
"""

from ._cgroup import all_hosts_cpu_s
from ._host import FAKETIME_LIB
from ._netns import NetnsExecutor, interface_is_up, netns_path, run_in_netns, socket_in_netns
from ._network import CLIENT, LINK_PROXY, LINK_PROXY_LOCAL_MARK, LINK_PROXY_PORTS
from ._state import STATE_DIR
from ._switch import Chain, Port
from ._sys import (
    descends_from,
    parent_pid,
    pid_running,
    pid_start_time,
    pid_state,
    proc_stat,
    psi_some,
    psi_total_us,
    remount_tmpfs_size,
    run,
)

__all__ = [
    "CLIENT",
    "FAKETIME_LIB",
    "LINK_PROXY",
    "LINK_PROXY_LOCAL_MARK",
    "LINK_PROXY_PORTS",
    "STATE_DIR",
    "Chain",
    "NetnsExecutor",
    "Port",
    "all_hosts_cpu_s",
    "descends_from",
    "interface_is_up",
    "netns_path",
    "parent_pid",
    "pid_running",
    "pid_start_time",
    "pid_state",
    "proc_stat",
    "psi_some",
    "psi_total_us",
    "remount_tmpfs_size",
    "run",
    "run_in_netns",
    "socket_in_netns",
]
