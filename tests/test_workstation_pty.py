"""Workstation.spawn_interactive: a process on a pty in the very sandbox ``exec`` uses."""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Iterator

import pytest
from conftest import assert_no_leftovers, needs_root

from infragym.sandbox._pty import PtyProcess
from infragym.sandbox._workstation import Workstation

pytestmark = needs_root

# what makes the sandbox: user, capabilities, seccomp, hostname, network, mounts, cgroup,
# environment (TERM aside), cwd; and whether stdin is a terminal
PROBE = r"""
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' \
  /proc/self/status
hostname; pwd; readlink /proc/self/ns/net /proc/self/ns/user
awk '{print $5, $6}' /proc/self/mountinfo | sort
cat /proc/self/cgroup | sort
env | grep -v -E '^(TERM|_|SHLVL)=' | sort
ls /work /root 2>&1 | sed 's/^ls: //'
if [ -t 0 ]; then echo tty; else echo no-tty; fi
echo END-OF-PROBE
"""


@pytest.fixture
def ws() -> Iterator[Workstation]:
    w = Workstation().start()
    try:
        yield w
    finally:
        w.close()
    assert_no_leftovers(w.run_id)


def read_until(p: PtyProcess, marker: bytes, timeout: float = 20.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"{marker!r} did not come in {timeout:g} s: {out[-2000:]!r}"
        ready, _, _ = select.select([p.master_fd], [], [], left)
        if ready:
            try:
                chunk = os.read(p.master_fd, 1 << 16)
            except OSError:  # EIO: every writer is gone
                chunk = b""
            assert chunk, f"the pty closed before {marker!r}: {out[-2000:]!r}"
            out += chunk
    return out


def test_a_pty_process_runs_in_the_same_sandbox_as_exec(ws: Workstation) -> None:
    r = asyncio.run(ws.exec(["bash", "-c", PROBE], timeout=20))
    assert r.exit_code == 0, r.output
    with ws.spawn_interactive(["bash", "-c", PROBE], env={"TERM": "xterm"}) as p:
        out = read_until(p, b"END-OF-PROBE\r\n")
    by_exec = r.output.decode().splitlines()
    by_pty = out.decode().replace("\r\n", "\n").splitlines()
    assert by_exec[-2:] == ["no-tty", "END-OF-PROBE"] and by_pty[-2:] == ["tty", "END-OF-PROBE"]
    # bwrap binds a terminal on stdin to /dev/console: the sandbox's own pty, nothing else
    assert [ln for ln in by_pty[:-2] if not ln.startswith("/dev/console ")] == by_exec[:-2]
    assert ws.identity is not None
    uid = ws.identity.uid
    assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in by_pty and "NoNewPrivs:\t1" in by_pty


def test_a_pty_shell_has_job_control_and_survives_commands_and_close_kills_it(
    ws: Workstation,
) -> None:
    with ws.spawn_interactive(["bash", "--norc", "-i"], env={"TERM": "dumb"}) as p:
        os.write(p.master_fd, b"sleep 300 &\njobs; echo jobs-$((1+1))\n")
        assert b"sleep 300 &" in read_until(p, b"jobs-2")
        # a command of the exec tool ending sweeps its leftovers, but not the open shell
        assert asyncio.run(ws.exec(["true"], timeout=20)).exit_code == 0
        os.write(p.master_fd, b"sleep 200\n")
        time.sleep(0.3)
        os.write(p.master_fd, b"\x03echo back-$((2+3))\n")  # Ctrl-C: the sleep, not the shell
        read_until(p, b"back-5")
        assert p.poll() is None and len(ws.pids()) >= 2
    assert p.poll() is not None and ws.pids() == []  # close killed the shell and its job


def test_a_command_cancelled_while_it_starts_is_killed_whole(ws: Workstation) -> None:
    # Ctrl-C under asyncio.run cancels the step whatever it is at; here, the start: the
    # monitor is forked but its pipes are not connected yet. asyncio alone would kill the
    # monitor only and wait for the output to end, held open by the namespace's init
    async def main() -> None:
        t = asyncio.ensure_future(ws.exec(["sleep", "300"], timeout=600))
        for _ in range(1000):  # the monitor is forked synchronously: see it, then
            if ws.pids():  # connecting its pipes takes more turns of the loop
                break
            await asyncio.sleep(0)
        for _ in range(200):  # no await: the start stays where it is meanwhile
            if any(_cmdline(pid) == "sleep 300" for pid in ws.pids()):
                break
            time.sleep(0.05)
        t.cancel()
        done, _ = await asyncio.wait([t], timeout=20)
        assert done, "a cancelled exec outlived its cancel by 20 s"
        assert t.cancelled()
        assert ws.pids() == []

    asyncio.run(main())


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
