"""A seccomp filter that keeps sandboxed code out of new user namespaces.

The agent and every host run as an unprivileged user, but this kernel lets any user
create a user namespace, and inside one a process holds every capability over the
namespaces it creates there: the door to the kernel's namespace-only attack surface
(nf_tables, mount and network code that trusts CAP_NET_ADMIN or CAP_SYS_ADMIN). bwrap
loads this filter (``--seccomp FD``) just before it executes the sandboxed program, so
it binds that program and everything it starts:

- ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` fail with EPERM;
- ``clone3`` fails with ENOSYS, because its flags sit in memory a filter cannot read;
  the C library then falls back to ``clone`` (Docker's default profile does the same);
- system calls of another ABI (i386, x32) fail with ENOSYS, so none of them can dodge
  the rules by number.

The program is classic BPF, written out here rather than built with libseccomp: it is
thirteen instructions, and the machine gains no dependency.
"""

from __future__ import annotations

import os
import platform
import struct

from .._errors import CapabilityError

__all__ = ["filter_program", "seccomp_fd"]

CLONE_NEWUSER = 0x10000000
EPERM, ENOSYS = 1, 38

# per machine: the audit arch of its native ABI and the numbers of clone, unshare, clone3
_ARCHES = {
    "x86_64": (0xC000003E, 56, 272, 435),
    "aarch64": (0xC00000B7, 220, 97, 435),
}

_LD_W_ABS = 0x20
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (little-endian)


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes:
    """The filter as the bytes of a ``struct sock_filter`` array, for ``machine``
    (default: this one's)."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise CapabilityError(
            f"no user-namespace seccomp filter for {machine!r} (known: {', '.join(_ARCHES)})"
        )
    arch, clone, unshare, clone3 = _ARCHES[machine]
    return b"".join([
        _insn(_LD_W_ABS, _ARCH),                 # 0
        _insn(_JEQ, arch, 0, 10),                # 1  another ABI -> 12
        _insn(_LD_W_ABS, _NR),                   # 2
        _insn(_JGE, _X32_BIT, 8, 0),             # 3  x32 -> 12
        _insn(_JEQ, clone3, 7, 0),               # 4  -> 12
        _insn(_JEQ, unshare, 2, 0),              # 5  -> 8
        _insn(_JEQ, clone, 1, 0),                # 6  -> 8
        _insn(_RET, _ALLOW),                     # 7
        _insn(_LD_W_ABS, _ARG0),                 # 8  the flags
        _insn(_JSET, CLONE_NEWUSER, 1, 0),       # 9  -> 11
        _insn(_RET, _ALLOW),                     # 10
        _insn(_RET, _ERRNO | EPERM),             # 11
        _insn(_RET, _ERRNO | ENOSYS),            # 12
    ])  # fmt: skip


_PROGRAM: bytes | None = None


def seccomp_fd() -> int:
    """A new file descriptor holding the filter, for one bwrap's ``--seccomp FD`` (bwrap
    reads it to the end, so each start needs its own). The caller passes it to the child
    and closes it after the start."""
    global _PROGRAM
    if _PROGRAM is None:
        _PROGRAM = filter_program()
    fd = os.memfd_create("infragym-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, _PROGRAM)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
