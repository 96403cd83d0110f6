"""What runs on a host is untrusted, and teardown must survive every way a run can end.

Each test here reproduces a way the platform was once broken (found in review).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import assert_no_leftovers, leftovers, needs_root, start_http

from infragym import ConfigError, ProcessError
from infragym.nemesis import DiskFull
from infragym.sandbox import Cluster, Limits, _state, cleanup

pytestmark = needs_root


def sh(host, script: str, timeout: float = 20) -> str:  # type: ignore[no-untyped-def]
    r = host.run(["sh", "-c", script], timeout=timeout)
    return (r.stdout + r.stderr).decode()


def test_host_processes_are_unprivileged_and_confined(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    (n2.data_dir / "secret").write_text("n2")
    out = sh(n1, "id -u; grep CapEff /proc/self/status; ps -e -o pid= | wc -l; "
                 "ls /sys/fs/cgroup | wc -l; ls /run | wc -l; "
                 "echo x > /root/x 2>&1 || echo ROOT-DENIED; "
                 "echo x > /etc/x 2>&1 || echo ETC-DENIED; "
                 f"cat {n2.data_dir}/secret 2>&1 || echo OTHER-HOST-HIDDEN; "
                 "nsenter --net=/proc/1/ns/net true 2>&1 || echo NSENTER-DENIED; "
                 "nft flush ruleset 2>&1 || echo NFT-DENIED; "
                 "unshare -U -r -n nft flush ruleset 2>&1 || echo USERNS-DENIED; "
                 "ip addr add 198.18.9.9/24 dev eth0 2>&1 || echo IP-DENIED")
    lines = out.split()
    assert cluster3.identity is not None and lines[0] == str(cluster3.identity.uid), out
    assert "CapEff:" in out and "0000000000000000" in out
    assert int(lines[3]) <= 4, f"the host sees processes beyond its own: {out}"
    for marker in ("ROOT-DENIED", "ETC-DENIED", "OTHER-HOST-HIDDEN", "NSENTER-DENIED",
                   "NFT-DENIED", "USERNS-DENIED", "IP-DENIED"):
        assert marker in out, f"{marker} missing: {out}"
    assert not (n1.root / "x").exists()


def test_host_cannot_leave_its_cgroup_or_outlive_the_cluster() -> None:
    with Cluster(1) as c:
        h = c.hosts[0]
        out = sh(h, "echo $$ > /sys/fs/cgroup/pids/cgroup.procs 2>&1 || echo MOVE-DENIED")
        assert "MOVE-DENIED" in out
        h.spawn("daemon", ["sh", "-c", "(setsid sleep 300 &) ; sleep 300"])
        time.sleep(0.3)
        pids = h.pids()
        assert len(pids) >= 2
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} outlived its cluster"
    assert_no_leftovers(c.run_id)


def test_low_ports_bind_and_ipv6_link_local_is_absent(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    start_http(n2, port=80)
    assert n1.can_connect(n2.address, 80)
    out = sh(n1, "ip -6 addr show dev eth0")
    assert "inet6" not in out, out
    bridge = subprocess.run(["ip", "-6", "addr", "show", "dev", cluster3.bridge],
                            capture_output=True, text=True, check=True).stdout
    assert "inet6" not in bridge, bridge


def test_host_disk_cannot_fill_the_machine(cluster3: Cluster) -> None:
    h = cluster3.hosts[0]
    out = sh(h, "head -c 200000000 /dev/zero > /srv/logs/big || echo LOGS-FULL; "
                "head -c 200000000 /dev/zero > /tmp/big || echo TMP-FULL")
    assert "LOGS-FULL" in out and "TMP-FULL" in out and "No space left" in out, out
    assert os.statvfs(h.logs_dir).f_blocks * os.statvfs(h.logs_dir).f_frsize <= 64 << 20


def test_cleanup_ignores_an_empty_subnet_lock_and_spares_live_runs() -> None:
    with Cluster(1) as c:
        (c.hosts[0].data_dir / "keep").write_text("live data")
        lock = _state.STATE_DIR / "subnets" / "198.19.253.0"
        lock.write_text("")  # what a writer killed between create and write used to leave
        try:
            report = cleanup()
        finally:
            lock.unlink(missing_ok=True)
        assert c.run_id in report.skipped_live
        assert (c.hosts[0].data_dir / "keep").read_text() == "live data"
        assert _state.DATA_ROOT.exists()


def test_a_run_id_clash_never_touches_the_other_run() -> None:
    with Cluster(1) as a:
        start_http(a.hosts[0])
        b = Cluster(1)
        b._set_run_id(a.run_id)  # force the unlucky draw
        b.start()
        try:
            assert b.run_id != a.run_id
        finally:
            b.close()
        assert a.hosts[0].pids(), "the other run's service was killed"
        assert leftovers(a.run_id)["netns"]


def test_paused_host_spawn_and_run_fail_fast_and_restart_waits_for_thaw() -> None:
    with Cluster(1) as c:
        h = c.hosts[0]
        start_http(h)
        h.freeze()
        t = time.monotonic()
        with pytest.raises(ProcessError, match="paused"):
            h.spawn("x", ["true"])
        with pytest.raises(ProcessError, match="paused"):
            h.run(["true"], timeout=1)
        assert time.monotonic() - t < 2
        h.kill_all()  # a crash during the pause
        assert h.cgroup.frozen(), "a crash must not end a pause"
        assert h.restart() == []  # deferred
        h.thaw()
        h.wait_port(8080)
        assert h.processes and h.processes[0].name == "http"


def test_run_timeout_kills_children_that_left_the_group(cluster3: Cluster) -> None:
    h = cluster3.hosts[0]
    t = time.monotonic()
    with pytest.raises(ProcessError, match="did not finish"):
        h.run(["sh", "-c", "setsid sleep 60 & echo started; sleep 60"], timeout=1)
    assert time.monotonic() - t < 8
    deadline = time.monotonic() + 3
    while h.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert h.pids() == []


def _child(body: str, timeout: float = 30) -> subprocess.Popen[str]:
    code = textwrap.dedent("""
        import os, sys, threading, time, signal
        from infragym.sandbox import Cluster
        import infragym.sandbox._cluster as cm
    """) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _read_ids(p: subprocess.Popen[str], n: int) -> list[str]:
    assert p.stdout is not None
    ids = [p.stdout.readline().strip() for _ in range(n)]
    assert all(len(i) == 6 for i in ids), ids
    return ids


def _finish(p: subprocess.Popen[str]) -> str:
    _, err = p.communicate(timeout=30)
    return err


def test_sigterm_during_close_still_removes_everything() -> None:
    p = _child("""
        orig = cm.remove_run_tree
        def slow(run_id):
            print("closing", flush=True)
            time.sleep(1.0)
            return orig(run_id)
        cm.remove_run_tree = slow
        c = Cluster(3).start()
        c.hosts[0].spawn("s", ["sleep", "300"])
        print(c.run_id, flush=True)
        c.close()
        time.sleep(30)
    """)
    (run_id,) = _read_ids(p, 1)
    assert p.stdout is not None and p.stdout.readline().strip() == "closing"
    p.send_signal(signal.SIGTERM)
    _finish(p)
    assert_no_leftovers(run_id)


def test_sigterm_handled_when_first_cluster_started_off_main_thread() -> None:
    p = _child("""
        box = []
        t = threading.Thread(target=lambda: box.append(Cluster(1).start()))
        t.start(); t.join()
        c = Cluster(1).start()
        print(box[0].run_id, flush=True); print(c.run_id, flush=True)
        time.sleep(30)
    """)
    ids = _read_ids(p, 2)
    p.send_signal(signal.SIGTERM)
    _finish(p)
    for run_id in ids:
        assert_no_leftovers(run_id)


def test_unreferenced_cluster_is_removed_at_exit() -> None:
    p = _child("""
        print(Cluster(2).start().run_id, flush=True)
    """)
    (run_id,) = _read_ids(p, 1)
    _finish(p)
    assert p.returncode == 0
    assert_no_leftovers(run_id)


def test_forked_child_exit_leaves_parent_cluster_alone() -> None:
    p = _child("""
        c = Cluster(1).start()
        c.hosts[0].spawn("s", ["sleep", "300"])
        print(c.run_id, flush=True)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a normal exit: atexit handlers run in the child
        os.waitpid(pid, 0)
        print("alive" if c.hosts[0].pids() else "killed", flush=True)
        c.close()
    """)
    (run_id,) = _read_ids(p, 1)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "alive"
    _finish(p)
    assert_no_leftovers(run_id)


@pytest.mark.parametrize("kwargs, match", [
    ({"hosts": "abc"}, "number of hosts or a list"),
    ({"hosts": 3, "data_size": float("nan")}, "data_size"),
    ({"hosts": 3, "scratch_size": 10}, "scratch_size"),
])
def test_bad_cluster_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Cluster(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"pids": 0}, {"pids": -1}, {"memory_bytes": 0},
                                    {"cpu": 0.0001}, {"cpu": -1}])
def test_bad_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="Limits"):
        Limits(**kwargs)  # type: ignore[arg-type]


def test_app_is_deployed_read_only_on_every_host(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = tmp_path / "app"
    (app / "bin").mkdir(parents=True)
    (app / "bin" / "start.sh").write_text("#!/bin/sh\necho started $1\n")
    (app / "bin" / "start.sh").chmod(0o700)  # owner-only: must still run as the host user
    with Cluster(2, app=app) as c:
        for h in c.hosts:
            out = sh(h, f"/srv/app/bin/start.sh {h.name}; echo x > /srv/app/new 2>&1 || echo RO")
            assert f"started {h.name}" in out and "RO" in out, out
        (app / "bin" / "start.sh").write_text("changed")  # the source is copied, not shared
        assert "started" in sh(c.hosts[0], "/srv/app/bin/start.sh")


def test_hosts_see_only_system_dirs_and_not_hidden_task_folders() -> None:
    """The agent's system runs on hosts in grading: graders and solutions are out of sight."""
    import infragym
    from infragym.tasks import find_task

    task = find_task("kv-replicated")
    with Cluster(1, hidden=[task.path]) as c:
        out = sh(c.hosts[0], f"cat {task.grader_path} 2>&1 || echo GRADER-HIDDEN; "
                             f"ls {task.path}/solutions 2>&1 || echo SOLUTIONS-HIDDEN; "
                             f"ls {os.path.dirname(infragym.__file__)} 2>&1 || echo PKG-HIDDEN; "
                             "ls /work /root /home /var/lib 2>&1 | head -3; ls / ")
    for marker in ("GRADER-HIDDEN", "SOLUTIONS-HIDDEN", "PKG-HIDDEN"):
        assert marker in out, out
    assert "async def grade" not in out and "server.py" not in out
    top = set(out.split())
    assert not top & {"work", "root", "home", "var", "opt"}, out


def test_grading_hosts_hide_every_task_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from infragym.grading import GradeContext
    from infragym.tasks import find_task

    task = find_task("kv-replicated")
    (tmp_path / "ws").mkdir()
    ctx = GradeContext("t", 1, tmp_path / "ws", tmp_path / "art", 60.0)
    try:
        c = ctx.cluster(1)
        assert task.path in c.hidden
        out = sh(c.hosts[0], f"cat {task.grader_path} 2>&1 || echo HIDDEN")
        assert "HIDDEN" in out and "async def grade" not in out
    finally:
        ctx.close()


def test_links_and_pipes_a_host_plants_are_never_followed_by_the_platform(
        tmp_path: Path) -> None:
    """The code under test owns /srv/logs and /srv/data; the platform works there as root.
    A link it plants must never make root write, truncate or copy a file of the machine,
    and a pipe must never make it wait. (Before the fix, a link at a log's name made root
    append to any file, a link in the logs leaked any file into the artifacts, and a link
    at the disk-full ballast's name made root fill any file.)"""
    target = tmp_path / "machine-file"
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)  # nobody may traverse, not write
    art = tmp_path / "artifacts"
    with Cluster(1, artifacts_dir=art) as c:
        h = c.hosts[0]
        plant = (f"ln -s {target} /srv/logs/svc.log; ln -s {secret} /srv/logs/leak.txt; "
                 f"ln -s {secret} /srv/logs/leak.log; "
                 "mkfifo /srv/logs/pipe.log /srv/logs/fifo; mkdir /srv/logs/dir.log; "
                 f"ln -s {target} /srv/data/{DiskFull.BALLAST}")
        assert h.run(["sh", "-c", plant]).returncode == 0
        for name in ("svc", "pipe", "dir"):
            p = h.spawn(name, ["echo", f"from {name}"], service=False)
            p.wait(5)
            assert p.output().strip() == f"from {name}"
            assert (h.logs_dir / f"{name}.log").is_file()
        assert not target.exists(), "root wrote through a planted link"
        assert h.log("leak") == ""  # read_tail does not follow it either
        f = DiskFull("n1")
        f.apply(c)
        f.heal(c)
        assert not target.exists(), "the ballast went through a planted link"
    copied = {p.name for p in (art / "hosts" / "n1" / "logs").iterdir()}
    assert {"svc.log", "pipe.log", "dir.log"} <= copied
    assert not {"leak.txt", "leak.log", "fifo"} & copied
    assert "root only" not in "".join(
        p.read_text(errors="replace") for p in art.rglob("*") if p.is_file())


def test_the_machine_itself_never_sends_to_the_project_range(cluster3: Cluster) -> None:
    """From the machine's own namespace (a harness bug, a stray script) a packet to an
    address in 198.18.0.0/15 must fail at once, never leave by the default route to
    whatever answers there (the clusters' own traffic stays on their bridges: every other
    test here and in test_cluster.py shows it still flows)."""
    import errno
    import socket

    assert cluster3.subnet is not None
    unused = str(cluster3.subnet[200])
    with socket.socket() as s, pytest.raises(OSError) as info:
        s.settimeout(5)
        s.connect((unused, 8080))
    assert info.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), info.value
    r = subprocess.run(["ip", "route", "get", "198.19.255.1"], capture_output=True, text=True,
                       check=False)
    assert r.returncode != 0 and "No route to host" in r.stderr, r.stdout + r.stderr
