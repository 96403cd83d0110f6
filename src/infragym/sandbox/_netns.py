"""Sockets in another network namespace, made without moving the caller.

A network namespace belongs to a thread, and a socket keeps the namespace it was created in
for the rest of its life, whichever thread uses it. So a helper thread enters the namespace
(``setns``; Python 3.11 has no ``os.setns``), creates the socket and hands it back; the
caller, typically an event loop, never changes namespace and can serve sockets of many
namespaces at once.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .._errors import ConfigError, PrivilegeError, ResourceError

__all__ = [
    "NETNS_DIR",
    "NetnsExecutor",
    "enter_netns",
    "interface_is_up",
    "netns_path",
    "run_in_netns",
    "socket_in_netns",
]

T = TypeVar("T")

NETNS_DIR = "/var/run/netns"
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int


def netns_path(netns: str) -> str:
    """The file naming ``netns``: a name under /var/run/netns, or an absolute path as is."""
    if netns.startswith("/"):
        return netns
    if not netns or "/" in netns or netns in (".", ".."):
        raise ConfigError(f"invalid network namespace name {netns!r}: give a name as `ip netns`")
    return f"{NETNS_DIR}/{netns}"


def enter_netns(netns: str) -> None:
    """Move the calling thread (only it) into ``netns``."""
    path = netns_path(netns)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ResourceError(
            f"network namespace {netns!r} does not exist ({path}); create it or check the name"
        ) from None
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            if err == errno.EPERM:
                raise PrivilegeError(f"setns into {netns!r} needs root (CAP_SYS_ADMIN)")
            raise ResourceError(f"setns into {netns!r} failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a short-lived thread that entered ``netns``; return or raise its outcome."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            enter_netns(netns)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def socket_in_netns(
    netns: str,
    family: int = socket.AF_INET,
    type: int = socket.SOCK_STREAM,
    proto: int = 0,
) -> socket.socket:
    """A new socket living in ``netns``, created without moving the calling thread."""
    return run_in_netns(netns, lambda: socket.socket(family, type, proto))


def interface_is_up(sock: socket.socket, ifname: str) -> bool:
    """Whether ``ifname`` is administratively up in the namespace of ``sock``."""
    request = struct.pack("16sH22x", ifname.encode(), 0)
    try:
        reply = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return False
        raise
    flags: int = struct.unpack("16sH22x", reply)[1]
    return bool(flags & _IFF_UP)


class NetnsExecutor:
    """One thread pinned to a namespace, so an event loop can make sockets there cheaply.

    A thread per socket would cost a thread start on the loop's critical path; this thread
    enters the namespace once, on its first job, and is private to the executor, so nothing
    else ever runs in it. It holds a reference to the namespace until :meth:`shutdown`.
    """

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netns-{netns}")
        self._entered = False

    def _call(self, fn: Callable[[], T]) -> T:
        if not self._entered:
            enter_netns(self.netns)
            self._entered = True
        return fn()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` inside the namespace without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn)

    async def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM
    ) -> socket.socket:
        """A new socket living in the namespace."""
        return await self.run(lambda: socket.socket(family, type))

    def shutdown(self) -> None:
        """Let the thread exit once its queued jobs ran. Safe to call more than once."""
        self._pool.shutdown(wait=False)
