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


@pytest.mark.parametrize("machine, arch, clone, unshare", [
    ("x86_64", 0xC000003E, 56, 272), ("aarch64", 0xC00000B7, 220, 97)])
def test_the_program_checks_the_abi_and_the_user_namespace_flag(
        machine: str, arch: int, clone: int, unshare: int) -> None:
    insns = decode(filter_program(machine))
    assert len(insns) == 13
    for i, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:  # a jump lands inside the program
            assert i + 1 + jt < len(insns) and i + 1 + jf < len(insns)
    ks = [k for _, _, _, k in insns]
    assert arch in ks and clone in ks and unshare in ks and 435 in ks
    assert CLONE_NEWUSER in ks
    rets = [k for code, _, _, k in insns if code == 0x06]
    assert rets == [0x7FFF0000, 0x7FFF0000, 0x00050001, 0x00050026]  # allow, EPERM, ENOSYS


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
