"""The sandbox's low-level helpers that the layers above need to act on hosts from
outside: commands and nft rules in the machine's namespace, entering a host's network
namespace, resizing its tmpfs, the faketime library, the platform's state directory and
a process's identity (pid and start time, to tell a live process from a reused pid).
Public so that nemesis, grading's admission control and the doctor need no private module
of the sandbox; not part of the task author's API.
"""

from ._host import FAKETIME_LIB
from ._netns import NetnsExecutor, interface_is_up, netns_path, socket_in_netns
from ._state import STATE_DIR
from ._sys import nft, pid_start_time, remount_tmpfs_size, run

__all__ = [
    "FAKETIME_LIB",
    "STATE_DIR",
    "NetnsExecutor",
    "interface_is_up",
    "netns_path",
    "nft",
    "pid_start_time",
    "remount_tmpfs_size",
    "run",
    "socket_in_netns",
]
