"""A seccomp filter that keeps sandboxed code out of new user namespaces and keyrings.

The agent and every host run as an unprivileged user, but this kernel lets any user
create a user namespace, and inside one a process holds every capability over the
namespaces it creates there: the door to the kernel's namespace-only attack surface
(nf_tables, mount and network code that trusts CAP_NET_ADMIN or CAP_SYS_ADMIN). bwrap
loads this filter (``--seccomp FD``) just before it executes the sandboxed program, so
it binds that program and everything it starts:

- ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` fail with EPERM;
- ``clone3`` fails with ENOSYS, because its flags sit in memory a filter cannot read;
  the C library then falls back to ``clone`` (Docker's default profile does the same);
- ``add_key``, ``request_key`` and ``keyctl`` fail with EPERM: the kernel's keyrings are
  per user, not per namespace, and outlive the user's last process; each run has a uid
  of its own (:mod:`._identity`), but uids come back with run ids, so a key would be a
  channel from one episode to a later one (Docker's default profile refuses them too);
- ``io_uring_setup``, ``io_uring_enter``, ``io_uring_register`` and ``fanotify_init``
  fail with ENOSYS: a large attack surface (Docker's default profile refuses io_uring
  too), and a way to watch what other sandboxes open; programs fall back to plain
  system calls;
- system calls of another ABI (i386, x32) fail with ENOSYS, so none of them can dodge
  the rules by number.

The program is classic BPF, written out here rather than built with libseccomp: it is
about twenty instructions, and the machine gains no dependency.
"""

from __future__ import annotations

import os
import platform
import struct

from .._errors import CapabilityError

__all__ = ["filter_program", "seccomp_fd"]

CLONE_NEWUSER = 0x10000000
EPERM, ENOSYS = 1, 38

# per machine: the audit arch of its native ABI and the system call numbers that matter
_ARCHES = {
    "x86_64": {"arch": 0xC000003E, "clone": 56, "unshare": 272, "clone3": 435,
               "add_key": 248, "request_key": 249, "keyctl": 250, "fanotify_init": 300},
    "aarch64": {"arch": 0xC00000B7, "clone": 220, "unshare": 97, "clone3": 435,
                "add_key": 217, "request_key": 218, "keyctl": 219, "fanotify_init": 262},
}  # fmt: skip

_LD_W_ABS = 0x20
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000
_IO_URING_FIRST = 425  # io_uring_setup, io_uring_enter, io_uring_register: 425-427
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (little-endian)

# (opcode, k, label to jump to when true, label when false); None: the next instruction
_Insn = tuple[int, int, str | None, str | None]


def _assemble(program: list[tuple[str | None, _Insn]]) -> bytes:
    """Classic BPF from labelled instructions: jumps name labels, not offsets."""
    where = {label: i for i, (label, _) in enumerate(program) if label}
    out = []
    for i, (_, (code, k, jt, jf)) in enumerate(program):
        t = where[jt] - i - 1 if jt else 0
        f = where[jf] - i - 1 if jf else 0
        if not (0 <= t < 256 and 0 <= f < 256):
            raise ValueError(f"instruction {i}: a jump goes backwards or too far")
        out.append(struct.pack("=HBBI", code, t, f, k))
    return b"".join(out)


def filter_program(machine: str | None = None) -> bytes:
    """The filter as the bytes of a ``struct sock_filter`` array, for ``machine``
    (default: this one's)."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise CapabilityError(
            f"no user-namespace seccomp filter for {machine!r} (known: {', '.join(_ARCHES)})"
        )
    nr = _ARCHES[machine]
    return _assemble([
        (None, (_LD_W_ABS, _ARCH, None, None)),
        (None, (_JEQ, nr["arch"], None, "enosys")),      # another ABI
        (None, (_LD_W_ABS, _NR, None, None)),
        (None, (_JGE, _X32_BIT, "enosys", None)),        # x32 numbers
        (None, (_JEQ, nr["clone3"], "enosys", None)),
        (None, (_JGE, _IO_URING_FIRST, "io_uring", None)),  # io_uring_setup/enter/register
        (None, (_JEQ, nr["fanotify_init"], "enosys", None)),
        (None, (_JEQ, nr["add_key"], "eperm", None)),
        (None, (_JEQ, nr["request_key"], "eperm", None)),
        (None, (_JEQ, nr["keyctl"], "eperm", None)),
        (None, (_JEQ, nr["unshare"], "flags", None)),
        (None, (_JEQ, nr["clone"], "flags", None)),
        (None, (_RET, _ALLOW, None, None)),
        ("io_uring", (_JGE, _IO_URING_FIRST + 3, "allow", "enosys")),  # 428 on: newer calls
        ("flags", (_LD_W_ABS, _ARG0, None, None)),
        (None, (_JSET, CLONE_NEWUSER, "eperm", None)),
        ("allow", (_RET, _ALLOW, None, None)),
        ("eperm", (_RET, _ERRNO | EPERM, None, None)),
        ("enosys", (_RET, _ERRNO | ENOSYS, None, None)),
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
