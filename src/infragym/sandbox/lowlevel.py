"""The sandbox's low-level helpers that the layers above need to act on hosts from
outside: commands and nft rules in the machine's namespace, entering a host's network
namespace, resizing its tmpfs, the faketime library. Public so that nemesis and the
doctor need no private module of the sandbox; not part of the task author's API.
"""

from ._host import FAKETIME_LIB
from ._netns import NetnsExecutor, interface_is_up, netns_path, socket_in_netns
from ._sys import nft, remount_tmpfs_size, run

__all__ = [
    "FAKETIME_LIB",
    "NetnsExecutor",
    "interface_is_up",
    "netns_path",
    "nft",
    "remount_tmpfs_size",
    "run",
    "socket_in_netns",
]
