"""The TCP ports something listens on in a network namespace, asked of the kernel by
netlink (``NETLINK_SOCK_DIAG``, what ``ss -lt`` uses).

Reading ``/proc/<pid>/net/tcp`` costs ~5-8 ms of kernel time per read on this machine
whatever the namespace holds: the kernel walks its whole established-connection hash (sized
by memory), every namespace's buckets, to print one namespace's lines. A sock_diag dump of
listeners only walks the listening hash: ~0.02-0.05 ms. Waiting for a service to listen
polls, so the difference was ~12 % of a kv-replicated grading's harness CPU (py-spy).
"""

from __future__ import annotations

import errno
import os
import socket
import struct

__all__ = ["diag_socket", "listening_tcp_ports"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10
_HDR = struct.Struct("=IHHII")  # struct nlmsghdr
_REQ = struct.Struct("=BBBBI48x")  # struct inet_diag_req_v2, its inet_diag_sockid zeroed
_SPORT = struct.Struct(">H")  # inet_diag_msg.id.idiag_sport, 4 bytes into the message


def diag_socket() -> socket.socket:
    """A sock_diag netlink socket of the calling thread's network namespace (a socket
    keeps its namespace: make it in a thread that entered the one to ask about)."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)


def listening_tcp_ports(sock: socket.socket, seq: int = 1) -> set[int]:
    """The TCP ports (IPv4 and IPv6) something listens on in ``sock``'s namespace.

    Raises OSError when the kernel refuses the dump (no inet_diag support)."""
    ports: set[int] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        req = _REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
        sock.send(_HDR.pack(_HDR.size + len(req), SOCK_DIAG_BY_FAMILY,
                            NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + req)  # fmt: skip
        ports |= _read_dump(sock, seq)
    return ports


def _read_dump(sock: socket.socket, seq: int) -> set[int]:
    ports: set[int] = set()
    while True:
        data = sock.recv(1 << 16)
        if not data:
            raise OSError(errno.EPROTO, "sock_diag: the dump ended without NLMSG_DONE")
        off = 0
        while off + _HDR.size <= len(data):
            length, kind, _flags, got_seq, _pid = _HDR.unpack_from(data, off)
            if length < _HDR.size:
                raise OSError(errno.EPROTO, f"sock_diag: a message of {length} bytes")
            if got_seq == seq:
                if kind == NLMSG_DONE:
                    return ports
                if kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + _HDR.size)
                    if err:
                        raise OSError(-err, f"sock_diag: {os.strerror(-err)}")
                elif kind == SOCK_DIAG_BY_FAMILY and length >= _HDR.size + 6:
                    ports.add(_SPORT.unpack_from(data, off + _HDR.size + 4)[0])
            off += (length + 3) & ~3
