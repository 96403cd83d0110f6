"""Network namespaces owned by a user namespace of their own, for hosts granted network
capabilities.

Capabilities count in a user namespace. Had a host's processes CAP_NET_ADMIN in the
machine's (initial) user namespace, they would hold it over every network namespace that
namespace owns, the machine's own included: rtnetlink's ``IFLA_TARGET_NETNSID`` names a
namespace by the id the host's namespace gives it, and the root namespace has one (the
peer of the host's veth lives there), so such a host can list and delete the machine's
links and those of other hosts (tried: it deleted a root-side veth). So the namespace of
a host granted network capabilities is created inside a new user namespace, and the host's
processes enter that user namespace before they drop privileges: what they hold there
covers their own network namespace and nothing else; the machine, the root namespace and
every other host belong to the initial user namespace.

The user namespace maps uid and gid 0 and the run's own (:mod:`._identity`) to themselves:
0 so that the launcher, which enters as root, keeps its capabilities across ``exec`` until
setpriv drops them; the run's, which host processes run as.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import subprocess

from .._errors import ResourceError
from ._netns import netns_path
from ._sys import bind_mount

__all__ = ["add_owned_netns", "enter_userns_of"]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_NS_GET_USERNS = 0xB701

_libc = ctypes.CDLL(None, use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _unshare_user_and_net() -> None:
    if _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER | CLONE_NEWNET)")


def add_owned_netns(name: str, uid: int) -> None:
    """Create network namespace ``name`` (kept at ``/run/netns/<name>`` as ``ip netns add``
    does, so ``ip netns del`` removes it) inside a new user namespace that maps root and
    ``uid`` (as uid and as gid).

    A short-lived child unshares both namespaces (a user namespace needs a single-threaded
    process); this process writes its id maps and bind-mounts its network namespace.
    """
    path = netns_path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    child = subprocess.Popen(
        ["cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        preexec_fn=_unshare_user_and_net,
        process_group=0,
    )
    made = False
    try:
        for what in ("uid_map", "gid_map"):
            with open(f"/proc/{child.pid}/{what}", "w") as fh:
                fh.write(f"0 0 1\n{uid} {uid} 1\n")
        with open(path, "x"):
            made = True
        bind_mount(f"/proc/{child.pid}/ns/net", path)
    except BaseException as exc:
        if made:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if isinstance(exc, OSError):
            raise ResourceError(f"cannot create network namespace {name}: {exc}") from exc
        raise
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()


def enter_userns_of(netns: str) -> None:
    """Move the calling process into the user namespace that owns ``netns`` (it must be
    single-threaded: a forked child before ``exec``)."""
    fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        userns = fcntl.ioctl(fd, _NS_GET_USERNS)
    finally:
        os.close(fd)
    try:
        if _libc.setns(userns, _CLONE_NEWUSER) != 0:
            err = ctypes.get_errno()
            raise ResourceError(f"cannot enter the user namespace of {netns}: {os.strerror(err)}")
    finally:
        os.close(userns)
