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
import itertools
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
_ERR = struct.Struct("=i")  # the error code that NLMSG_ERROR and NLMSG_DONE carry
_seqs = itertools.count(1)


def diag_socket(timeout: float = 1.0) -> socket.socket:
    """A sock_diag netlink socket of the calling thread's network namespace (a socket
    keeps its namespace: make it in a thread that entered the one to ask about); a reply
    the kernel does not send within ``timeout`` raises ``TimeoutError`` (an OSError)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    sock.settimeout(timeout)
    return sock


def listening_tcp_ports(sock: socket.socket) -> set[int]:
    """The TCP ports (IPv4 and IPv6) something listens on in ``sock``'s namespace.

    Raises OSError when the kernel refuses or breaks off the dump (no inet_diag support,
    a malformed reply, no reply within the socket's timeout); a kernel without IPv6
    lists the IPv4 ones."""
    ports: set[int] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        seq = next(_seqs) & 0xFFFFFFFF
        req = _REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
        sock.send(_HDR.pack(_HDR.size + len(req), SOCK_DIAG_BY_FAMILY,
                            NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + req)  # fmt: skip
        try:
            ports |= _read_dump(sock, seq)
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno == errno.ENOENT:
                continue  # no IPv6 in this kernel: no IPv6 listener either
            raise
    return ports


def _read_dump(sock: socket.socket, seq: int) -> set[int]:
    """The ports of one dump's replies (those of ``seq``: a stale reply of an earlier,
    broken-off dump is skipped)."""
    ports: set[int] = set()
    while True:
        data = sock.recv(1 << 16)
        if not data:
            raise OSError(errno.EPROTO, "sock_diag: the dump ended without NLMSG_DONE")
        off = 0
        while off + _HDR.size <= len(data):
            length, kind, _flags, got_seq, _pid = _HDR.unpack_from(data, off)
            if length < _HDR.size or off + length > len(data):
                raise OSError(errno.EPROTO, f"sock_diag: a malformed message of {length} bytes")
            if got_seq == seq:
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    err = _ERR.unpack_from(data, off + _HDR.size)[0] if length >= 20 else 0
                    if err:
                        raise OSError(-err, f"sock_diag: {os.strerror(-err)}")
                    if kind == NLMSG_DONE:
                        return ports
                    # an acknowledgement (error 0) ends nothing: read on
                elif kind == SOCK_DIAG_BY_FAMILY and length >= _HDR.size + 6:
                    ports.add(_SPORT.unpack_from(data, off + _HDR.size + 4)[0])
            off += (length + 3) & ~3
