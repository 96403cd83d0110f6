"""Hosts and clusters on real namespaces: isolation, processes, cleanup, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import assert_no_leftovers, leftovers, needs_root, start_http

from infragym import ConfigError, PrivilegeError, ProcessError
from infragym.sandbox import HOST_PYTHON, Cluster, Limits, _cgroup, _state, cleanup
from infragym.sandbox._sys import abort_sockets

pytestmark = needs_root


def test_hosts_reach_each_other_and_nothing_else(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    start_http(n2)
    assert n1.can_connect(n2.address, 8080)
    r = n1.run(["python3", "-c", "import urllib.request as u;print(u.urlopen('http://n2:8080/').read().decode())"])
    assert r.stdout.decode().strip() == "n2", r.stderr
    # no route outside the cluster: another cluster's subnet, the host side, the internet range
    for addr in ("198.19.255.1", "198.18.255.9", "127.0.0.2"):
        if addr.startswith("127."):
            continue
        assert not n1.can_connect(addr, 80, timeout=0.3)
    r = n1.run(["sh", "-c", "ip route"])
    routes = r.stdout.decode().strip().splitlines()
    assert routes == [f"{cluster3.subnet} dev eth0 proto kernel scope link src {n1.address}"]


def test_two_clusters_are_separate() -> None:
    with Cluster(2) as a, Cluster(2) as b:
        assert a.run_id != b.run_id and a.subnet != b.subnet
        start_http(b.hosts[0])
        assert b.hosts[1].can_connect(b.hosts[0].address, 8080)
        assert not a.hosts[0].can_connect(b.hosts[0].address, 8080, timeout=0.3)
        assert not any(h.netns == g.netns for h in a.hosts for g in b.hosts)


def test_mount_view_shows_only_own_dirs(cluster3: Cluster) -> None:
    n1, n2, _ = cluster3.hosts
    (n2.data_dir / "secret").write_text("n2 only")
    (n1.data_dir / "mine").write_text("n1\n")
    r = n1.run(["sh", "-c", "hostname; ls /srv/data; cat /srv/data/mine; "
                f"ls {n2.data_dir} 2>&1; echo x > /srv/data/w && echo wrote"])
    out = r.stdout.decode().split()
    assert out[:3] == ["n1", "mine", "n1"]
    assert "secret" not in r.stdout.decode()
    assert "wrote" in out
    assert (n1.data_dir / "w").read_text() == "x\n"


def test_process_output_signal_and_stop(cluster3: Cluster) -> None:
    h = cluster3.hosts[0]
    p = h.spawn("echoer", [HOST_PYTHON, "-u", "-c",
                           "import signal,sys,time\n"
                           "signal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\n"
                           "print('hello', flush=True)\n"
                           "for _ in range(600): time.sleep(0.05)"])
    deadline = time.monotonic() + 5
    while "hello" not in p.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "hello" in p.output()
    p.signal(signal.SIGUSR1)
    while "usr1" not in p.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "usr1" in h.log("echoer")
    assert p.stop(timeout=2) != 0
    assert not p.alive()


def test_kill_all_reaches_double_forked_daemons(cluster3: Cluster) -> None:
    h = cluster3.hosts[0]
    h.spawn("daemon", ["sh", "-c", "(setsid sleep 300 &) ; sleep 300"])
    deadline = time.monotonic() + 5
    while len(h.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(h.pids()) >= 2
    h.kill_all()
    assert h.pids() == []


def test_run_timeout_kills_children(cluster3: Cluster) -> None:
    h = cluster3.hosts[0]
    with pytest.raises(ProcessError, match="did not finish"):
        h.run(["sh", "-c", "sleep 100 & sleep 100"], timeout=0.5)
    deadline = time.monotonic() + 3
    while h.pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert h.pids() == []


def test_pids_limit_contains_fork_bomb() -> None:
    with Cluster(1, limits=Limits(pids=32, memory_bytes=256 << 20)) as c:
        h = c.hosts[0]
        r = h.run(["sh", "-c", "for i in $(seq 100); do sleep 5 & done; wait"], timeout=20)
        assert len(h.pids()) <= 32
        err = r.stderr.lower()
        assert r.returncode == 0 or b"fork" in err or b"resource" in err
        h.kill_all()


def test_a_hosts_cpu_use_is_counted_and_its_account_removed_with_it() -> None:
    burn = "import time\nwhile time.process_time() < 0.5:\n    pass\n"
    with Cluster(2) as c:
        before = c.cpu_usage_s()
        r = c["n1"].run([HOST_PYTHON, "-c", burn], timeout=30)
        assert r.returncode == 0, r.stderr
        after = c.cpu_usage_s()
        account = c["n1"].cgroup.dirs["cpuacct"]
        assert account.is_dir()
    # the half second the exited process burnt is still counted, and only on its host
    assert after["n1"] - before["n1"] >= 0.45, (before, after)
    assert after["n2"] - before["n2"] < 0.25, (before, after)
    assert not account.exists()
    assert c.cpu_usage_s() == {}


def test_a_runs_hosts_weighed_higher_get_the_cpu_before_another_runs() -> None:
    """``set_cpu_shares``: a grading's hosts weigh more while their load is measured
    (``load_under_faults``) than another run's, which gets the rest. Two runs of two
    spinning hosts each (a spinner per core on each host, so the runs contend on any
    machine), one at 4096 and one at the default 1024: about 80 % and 20 % of what the two
    runs got together, wherever else the machine's CPU went."""
    spin = ["/bin/sh", "-c", "while :; do :; done"]
    per_host = max(1, (os.cpu_count() or 1) // 2)
    with Cluster(2) as heavy, Cluster(2) as light:
        group = _cgroup.CGROUP_ROOT / "cpu" / _cgroup.PARENT / heavy.run_id
        assert int((group / "cpu.shares").read_text()) == 1024
        heavy.set_cpu_shares(4096)
        assert int((group / "cpu.shares").read_text()) == 4096
        for h in (*heavy.hosts, *light.hosts):
            for i in range(per_host):
                h.spawn(f"spin{i}", spin)
        time.sleep(0.5)
        h0, l0 = sum(heavy.cpu_usage_s().values()), sum(light.cpu_usage_s().values())
        time.sleep(2.0)
        h1, l1 = sum(heavy.cpu_usage_s().values()), sum(light.cpu_usage_s().values())
    share = (h1 - h0) / ((h1 - h0) + (l1 - l0))
    assert share > 0.65, share  # 0.5 if the weight did nothing


def test_no_leftovers_after_exception() -> None:
    run_id = None
    with pytest.raises(RuntimeError, match="boom"), Cluster(3) as c:
        run_id = c.run_id
        start_http(c.hosts[0])
        raise RuntimeError("boom")
    assert run_id is not None
    assert_no_leftovers(run_id)


CHILD = textwrap.dedent("""
    import signal, sys, time
    # take Ctrl-C as a foreground program does, even when the test runs in the background
    # of a shell without job control (which starts it with SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from infragym.sandbox import Cluster
    c = Cluster(3).start()
    c.hosts[0].spawn("sleeper", ["sleep", "300"])
    (c.hosts[1].data_dir / "x").write_text("x")
    print(c.run_id, flush=True)
    {tail}
""")


def _spawn_child(tail: str) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([sys.executable, "-c", CHILD.format(tail=tail)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    run_id = p.stdout.readline().strip()
    assert len(run_id) == 6, run_id
    return p, run_id


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_no_leftovers_after_signal(sig: int) -> None:
    p, run_id = _spawn_child("time.sleep(60)")
    try:
        assert leftovers(run_id)["netns"]
        p.send_signal(sig)
        p.wait(timeout=20)
    finally:
        if p.poll() is None:  # it outlived the signal: end it (and fail) without leaking it
            p.kill()
            p.wait()
        p.stdout.close()  # type: ignore[union-attr]
    assert_no_leftovers(run_id)


def test_sigkill_then_cleanup_removes_everything() -> None:
    p, run_id = _spawn_child("time.sleep(60)")
    sleeper_pids = leftovers(run_id)
    assert sleeper_pids["netns"] and sleeper_pids["cgroups"] and sleeper_pids["mounts"]
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    p.stdout.close()  # type: ignore[union-attr]
    left = leftovers(run_id)
    assert left["netns"] and left["cgroups"], "a SIGKILLed run should leave things behind"
    assert left["processes of its uid"], "the sleeper runs as the run's uid till cleanup"
    # each host's platform disk is a mount of its own, which cleanup removes too
    assert sum(m.endswith("/.platform") for m in left["mounts"]) == 3, left["mounts"]
    report = cleanup()
    assert run_id in report.runs
    # 3 hosts + the client namespace
    assert report.processes >= 1 and len(report.namespaces) == 4 and report.mounts
    assert_no_leftovers(run_id)


def test_cleanup_leaves_live_runs_alone() -> None:
    with Cluster(1) as c:
        report = cleanup()
        assert c.run_id in report.skipped_live
        assert leftovers(c.run_id)["netns"]


LEAKER = textwrap.dedent("""
    import sys, time
    from infragym import ResourceError
    from infragym.sandbox import Cluster, _cluster, _workstation

    def broken(*args: object) -> None:
        raise OSError("injected failure")

    live = Cluster(1).start()
    live.hosts[0].spawn("sleeper", ["sleep", "300"])
    bad = Cluster(2).start()
    bad.hosts[0].spawn("sleeper", ["sleep", "300"])
    for _ in range(500):  # until it runs in its view (monitor, init, sleep)
        if len(bad.hosts[0].pids()) >= 3:
            break
        time.sleep(0.01)
    # its teardown fails halfway: processes, cgroups, network and mounts all stay
    saved = _cluster._remove_host_processes, _cluster.remove_run_tree
    _cluster._remove_host_processes = _cluster.remove_run_tree = broken
    bad._remove_network = bad._remove_mounts = broken
    try:
        bad.close()
    except ResourceError as exc:
        print(exc, file=sys.stderr)
    _cluster._remove_host_processes, _cluster.remove_run_tree = saved
    # a workstation whose mounts cannot be removed
    ws = _workstation.Workstation().start()
    saved_umount, _workstation.umount = _workstation.umount, broken
    try:
        ws.close()
    except ResourceError as exc:
        print(exc, file=sys.stderr)
    _workstation.umount = saved_umount
    print(live.run_id, bad.run_id, ws.run_id, flush=True)
    time.sleep(120)
""")


def test_cleanup_reclaims_a_failed_teardown_while_its_owner_lives() -> None:
    """A long-lived process (a trainer) whose episode's teardown failed: cleanup removes
    that run's leftovers now, and leaves the process's live cluster alone."""
    p = subprocess.Popen([sys.executable, "-c", LEAKER], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        live, bad, ws = p.stdout.readline().split()
        left = leftovers(bad)
        assert left["netns"] and left["links"] and left["cgroups"] and left["mounts"], left
        assert left["record"], left
        assert leftovers(ws)["mounts"] and leftovers(ws)["record"], leftovers(ws)
        report = cleanup(owner_pid=p.pid)  # that process's runs only: others' stay
        assert p.poll() is None, "the owner must still be running"
        assert bad in report.runs and bad in report.leaked_by_live, report
        assert ws in report.runs and ws in report.leaked_by_live, report
        assert report.processes >= 1, report  # its sleeper and what runs it
        assert live in report.skipped_live and live not in report.runs, report
        assert_no_leftovers(bad)
        assert_no_leftovers(ws)
        still = leftovers(live)
        assert still["netns"] and still["links"] and still["cgroups"] and still["mounts"]
        assert still["record"], still
        assert "left by a failed teardown" in report.summary()
    finally:
        p.send_signal(signal.SIGTERM)  # the owner tears its live cluster down as it ends
        p.wait(timeout=30)
        if p.stdout is not None:
            p.stdout.close()
    assert_no_leftovers(live)


@pytest.mark.parametrize("hosts", [0, 17, ["a", "a"], ["1bad"], ["UPPER"], [], "n1"])
def test_invalid_topology_is_a_config_error(hosts: object) -> None:
    with pytest.raises(ConfigError):
        Cluster(hosts)  # type: ignore[arg-type]


def test_unknown_host_name_is_a_config_error(cluster3: Cluster) -> None:
    with pytest.raises(ConfigError, match="no host 'n9'"):
        cluster3.host("n9")


def test_running_without_root_says_so() -> None:
    code = ("import os\n"
            "from infragym.sandbox import Cluster\n"
            "os.setegid(65534); os.seteuid(65534)\n"
            "Cluster(2).start()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=30, check=False)
    assert r.returncode != 0
    assert "PrivilegeError" in r.stderr and "needs root" in r.stderr
    assert PrivilegeError.__name__ in r.stderr


def test_client_namespace_reaches_every_host_from_an_event_loop(cluster3: Cluster) -> None:
    import asyncio

    for h in cluster3.hosts:
        start_http(h)

    async def fetch_all() -> list[str]:
        out = []
        for h in cluster3.hosts:
            reader, writer = await asyncio.open_connection(h.address, 8080)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            out.append(data.split(b"\r\n\r\n", 1)[1].decode())
        return out

    assert cluster3.run_client(fetch_all) == ["n1", "n2", "n3"]
    s = cluster3.client_socket()
    s.settimeout(0.3)
    with pytest.raises(OSError):
        s.connect(("198.19.255.1", 80))  # outside the cluster: no route
    s.close()


@needs_root
def test_close_ends_work_running_in_the_client_namespace() -> None:
    """A workload runs in a thread's event loop (run_client): teardown (a Ctrl-C, a
    SIGTERM, a grading budget) cancels it, so an exit never waits for its whole course.
    (Before, SIGTERM during grading took 8-20 s to exit: the rest of the load phase.)"""
    import asyncio
    import concurrent.futures

    started = threading.Event()

    async def long_load() -> str:
        started.set()
        await asyncio.sleep(60)
        return "finished"

    c = Cluster(1).start()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(c.run_client, long_load)
        assert started.wait(10)
        t0 = time.monotonic()
        c.close()
        with pytest.raises(asyncio.CancelledError):
            fut.result(timeout=10)
        assert time.monotonic() - t0 < 10
    assert_no_leftovers(c.run_id)


@needs_root
def test_cleanup_of_one_owner_spares_a_later_process_that_reused_its_pid() -> None:
    """A dead worker's sweep names it by pid and start time: runs recorded by another
    process with the same pid (a reused pid: another start time) are not its to remove."""
    p = subprocess.Popen(["true"])
    p.wait()
    rec = _state.RunRecord(_state.new_run_id(), p.pid, 4242, None)
    assert rec.claim()
    try:
        assert rec.run_id not in cleanup(owner_pid=p.pid, owner_start=4243).runs
        assert _state.RunRecord.load(rec.run_id) is not None
        assert rec.run_id in cleanup(owner_pid=p.pid, owner_start=4242).runs
        assert _state.RunRecord.load(rec.run_id) is None
    finally:
        rec.remove()


@needs_root
def test_abort_sockets_ends_what_a_namespace_holds_and_never_raises(
    cluster3: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What teardown runs before deleting the namespaces (orphans would hold them): it
    aborts every TCP socket left there, and a missing namespace or `ss` stops nothing."""
    h = cluster3.hosts[0]

    def listening() -> str:
        ss = ["ss", "-N", h.netns, "-tlnH"]
        return subprocess.run(ss, capture_output=True, text=True, check=True).stdout

    s = h.socket()
    try:
        s.bind((h.address, 0))
        s.listen()
        port = f"{h.address}:{s.getsockname()[1]}"
        monkeypatch.setenv("PATH", "/nonexistent")
        abort_sockets([h.netns, "ig-no-such-namespace"])  # no ss: nothing done, no error
        monkeypatch.undo()
        assert port in listening()
        abort_sockets([h.netns])
        assert port not in listening()
    finally:
        s.close()
