"""The user-namespace seccomp filter as a program; its effect is tested from inside the
sandbox (test_workstation_security.py) and the hosts (test_cluster_hardening.py)."""

from __future__ import annotations

import os
import struct

import pytest

from infragym import CapabilityError
from infragym.sandbox._seccomp import CLONE_NEWUSER, filter_program, seccomp_fd


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]


@pytest.mark.parametrize("machine, arch, nrs", [
    ("x86_64", 0xC000003E, (56, 272, 435, 248, 249, 250, 300)),
    ("aarch64", 0xC00000B7, (220, 97, 435, 217, 218, 219, 262))])
def test_the_program_checks_the_abi_user_namespaces_and_keyrings(
        machine: str, arch: int, nrs: tuple[int, ...]) -> None:
    insns = decode(filter_program(machine))
    assert len(insns) == 19
    for i, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:  # a jump lands inside the program
            assert i + 1 + jt < len(insns) and i + 1 + jf < len(insns)
    ks = [k for code, _, _, k in insns if code == 0x15]  # what JEQ compares with
    assert arch in ks and set(nrs) <= set(ks)
    assert CLONE_NEWUSER in [k for code, _, _, k in insns if code == 0x45]
    rets = [k for code, _, _, k in insns if code == 0x06]
    assert rets == [0x7FFF0000, 0x7FFF0000, 0x00050001, 0x00050026]  # allow, EPERM, ENOSYS
    assert 425 in [k for code, _, _, k in insns if code == 0x35]  # io_uring's range


def run_filter(program: bytes, nr: int, arg0: int = 0, arch: int = 0xC000003E) -> int:
    """Interpret the program over one system call, as the kernel does."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns, pc, acc = decode(program), 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x06:
            return k
        else:
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if hit else jf
        pc += 1


@pytest.mark.parametrize("nr, arg0, arch, verdict", [
    (56, 0x11, 0xC000003E, 0x7FFF0000),                   # clone(SIGCHLD): a fork
    (56, 0x10000011, 0xC000003E, 0x00050001),             # clone(CLONE_NEWUSER)
    (272, 0x40000000, 0xC000003E, 0x7FFF0000),            # unshare(CLONE_NEWNET): no caps
    (272, 0x50000000, 0xC000003E, 0x00050001),            # unshare(NEWUSER | NEWNET)
    (435, 0, 0xC000003E, 0x00050026),                     # clone3 -> ENOSYS
    (248, 0, 0xC000003E, 0x00050001),                     # add_key
    (250, 0, 0xC000003E, 0x00050001),                     # keyctl
    (0, 0, 0xC000003E, 0x7FFF0000),                       # read
    (425, 0, 0xC000003E, 0x00050026),                     # io_uring_setup
    (427, 0, 0xC000003E, 0x00050026),                     # io_uring_register
    (428, 0, 0xC000003E, 0x7FFF0000),                     # open_tree: after io_uring
    (436, 0, 0xC000003E, 0x7FFF0000),                     # close_range: after clone3
    (300, 0, 0xC000003E, 0x00050026),                     # fanotify_init
    (253, 0, 0xC000003E, 0x7FFF0000),                     # inotify_init: allowed
    (0x40000000 | 272, 0x10000000, 0xC000003E, 0x00050026),  # x32 unshare
    (310, 0x10000000, 0x40000003, 0x00050026),            # i386 unshare
])
def test_the_program_decides_each_call_as_documented(
        nr: int, arg0: int, arch: int, verdict: int) -> None:
    assert run_filter(filter_program("x86_64"), nr, arg0, arch) == verdict


def test_an_unknown_machine_is_a_clear_error() -> None:
    with pytest.raises(CapabilityError, match="no user-namespace seccomp filter for 'sparc64'"):
        filter_program("sparc64")


def test_each_start_gets_its_own_descriptor_read_from_the_start() -> None:
    a, b = seccomp_fd(), seccomp_fd()
    try:
        assert a != b
        assert os.read(a, 4096) == os.read(b, 4096) == filter_program()
    finally:
        os.close(a)
        os.close(b)
