"""A running cluster that grows (``Cluster.add_hosts``): the new hosts are built as the
first ones were, every host (and every process already running) resolves them, the
guard and the client reach them, and they go with the cluster, also after a failure."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from conftest import ROOT, assert_no_leftovers, needs_root, start_http

from infragym import ConfigError, ProcessError
from infragym.sandbox import HOST_PYTHON, Cluster, Limits, _state

# resolves a name with glibc each time it is asked (as a service dialling a peer does)
RESOLVER = r"""
import http.server, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            body = socket.gethostbyname(self.path.strip("/")).encode()
        except OSError as exc:
            body = f"error {exc}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8081), H).serve_forever()
"""


def _get(host, address: str, port: int, path: str = "/") -> str:  # type: ignore[no-untyped-def]
    r = host.run(
        [HOST_PYTHON, "-c", f"import urllib.request as u; print(u.urlopen('http://{address}:"
         f"{port}{path}', timeout=5).read().decode())"],
        timeout=20,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().strip()


@needs_root
def test_added_hosts_are_built_like_the_others_and_every_host_reaches_them(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "version.txt").write_text("v1\n")
    with Cluster(["kv1", "kv2"], app=app, data_size=8 << 20) as c:
        resolver = c.host("kv1").spawn("resolver", [HOST_PYTHON, "-c", RESOLVER])
        c.host("kv1").wait_port(8081)
        assert _get(c.host("kv1"), "127.0.0.1", 8081, "/kv3").startswith("error")
        added = c.add_hosts(
            ["kv3", "kv4"],
            host_limits={"kv3": Limits(pids=64)},
            data_sizes={"kv4": 4 << 20},
        )
        assert [h.name for h in added] == ["kv3", "kv4"]
        assert c.names == ["kv1", "kv2", "kv3", "kv4"]
        assert [h.name for h in c.hosts] == c.names
        kv3, kv4 = added
        # the next addresses of the subnet, on the cluster's network
        base = list(c.subnet.hosts())  # type: ignore[union-attr]
        assert (kv3.address, kv4.address) == (str(base[2]), str(base[3]))
        # the resolver started before the growth resolves the new names now
        assert _get(c.host("kv1"), "127.0.0.1", 8081, "/kv4") == kv4.address
        assert resolver.alive()
        # built like the others: the same app, their own disks of the sizes asked
        for h in added:
            r = h.run(["sh", "-c", "cat /srv/app/version.txt; id -u; cat /etc/hosts"])
            out = r.stdout.decode()
            assert out.startswith("v1\n"), out
            assert f"{c.identity.uid}\n" in out  # type: ignore[union-attr]
            for other in c.hosts:
                assert f"{other.address} {other.name}\n" in out
        sizes = {h.name: os.statvfs(h.data_dir).f_blocks * os.statvfs(h.data_dir).f_frsize
                 for h in c.hosts}  # fmt: skip
        assert sizes == {"kv1": 8 << 20, "kv2": 8 << 20, "kv3": 8 << 20, "kv4": 4 << 20}
        assert (kv3.cgroup.dirs["pids"] / "pids.max").read_text().strip() == "64"
        assert (kv4.cgroup.dirs["pids"] / "pids.max").read_text().strip() == "512"
        # old and new hosts reach each other by name, the client reaches the new ones
        start_http(kv3, 8080)
        start_http(c.host("kv2"), 8080)
        assert _get(c.host("kv1"), "kv3", 8080) == "kv3"
        assert _get(kv4, "kv2", 8080) == "kv2"
        assert _get(kv4, "kv3", 8080) == "kv3"
        s = c.client_socket()
        s.settimeout(5)
        s.connect((kv3.address, 8080))
        s.close()
        assert _state.RunRecord.load(c.run_id).hosts == c.names  # type: ignore[union-attr]
        run_id = c.run_id
    assert_no_leftovers(run_id)


@needs_root
def test_a_partition_of_the_old_hosts_holds_and_a_new_host_is_a_fault_target() -> None:
    from infragym.nemesis import Crash, Partition

    with Cluster(2) as c:
        p = Partition.isolate("n1", c.names, "p")
        p.apply(c)
        (n3,) = c.add_hosts(["n3"])
        start_http(c.host("n1"))
        start_http(n3)
        assert not c.host("n2").can_connect(c.host("n1").address, 8080)
        assert c.host("n2").can_connect(n3.address, 8080)
        p.heal(c)
        assert c.host("n2").can_connect(c.host("n1").address, 8080)
        crash = Crash("n3", "c", restart=True)
        assert crash.apply(c)["killed"] >= 1
        assert not n3.can_connect(n3.address, 8080)
        crash.heal(c)
        n3.wait_port(8080)
        run_id = c.run_id
    assert_no_leftovers(run_id)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("n3", "takes a list of host names"),
        ([], "at least one host name"),
        (["n2"], "duplicate host names: n2"),
        (["N3"], "invalid host name 'N3'"),
        ([f"x{i}" for i in range(15)], "a cluster has 1 to 16 hosts, not 17"),
    ],
)
@needs_root
def test_bad_names_to_add_are_refused_and_nothing_is_made(
    cluster2: Cluster, names: object, message: str
) -> None:
    before = list(cluster2.names)
    with pytest.raises(ConfigError, match=message):
        cluster2.add_hosts(names)  # type: ignore[arg-type]
    assert cluster2.names == before and len(cluster2.hosts) == 2


@needs_root
def test_capabilities_for_added_hosts_are_a_list_of_their_names(cluster2: Cluster) -> None:
    for bad, message in ((True, "net_admin is a list of the new hosts' names"),
                         ("n3", "net_admin must be True, False or a list"),
                         (["n1"], "net_admin")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            cluster2.add_hosts(["n3"], net_admin=bad)  # type: ignore[arg-type]
    assert cluster2.names == ["n1", "n2"]


@needs_root
def test_a_platform_process_cannot_write_over_the_platforms_own_files(cluster2: Cluster) -> None:
    n1 = cluster2.host("n1")
    hosts = (n1.platform_dir / "hosts").read_text()
    for name in ("hosts", "faketime.rc"):
        with pytest.raises(ConfigError, match="output must be a new file of"):
            n1.spawn("x", ["true"], service=False, output=n1.platform_dir / name)
    assert (n1.platform_dir / "hosts").read_text() == hosts
    # an error names a platform script shortly, not by its whole text
    with pytest.raises(ProcessError) as caught:
        n1.run([HOST_PYTHON, "-c", "import time\n" + "x = 1\n" * 200 + "time.sleep(9)"],
               timeout=0.5)  # fmt: skip
    assert "x = 1" not in str(caught.value) and "import time..." in str(caught.value)
    with pytest.raises(ProcessError, match="the probe on host n1 did not finish"):
        n1.run(["sleep", "9"], timeout=0.5, name="the probe")


@pytest.fixture
def cluster2():  # type: ignore[no-untyped-def]
    if not ROOT:
        pytest.skip("needs root")
    with Cluster(2) as c:
        yield c
    assert_no_leftovers(c.run_id)


@needs_root
def test_a_failed_growth_leaves_the_cluster_working_and_nothing_after_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infragym.sandbox import _cluster

    calls = []

    def failing(*a: object, **kw: object) -> None:
        calls.append(a)
        raise OSError("no room for the disk")

    with Cluster(2) as c:
        start_http(c.host("n1"))
        monkeypatch.setattr(_cluster, "mount_tmpfs", failing)
        with pytest.raises(OSError, match="no room"):
            c.add_hosts(["n3"])
        monkeypatch.undo()
        assert calls and c.names == ["n1", "n2"]
        assert c.host("n2").can_connect(c.host("n1").address, 8080)
        # the name is not taken by the failed try's leftovers
        with pytest.raises(ConfigError, match="already names an endpoint"):
            c.add_hosts(["n3"])
        (n4,) = c.add_hosts(["n4"])
        start_http(n4)
        assert c.host("n1").can_connect(n4.address, 8080)
        run_id = c.run_id
    assert_no_leftovers(run_id)


@needs_root
def test_a_closed_or_unstarted_cluster_does_not_grow() -> None:
    c = Cluster(1)
    with pytest.raises(ConfigError, match="started cluster"):
        c.add_hosts(["n2"])
    with c:
        pass
    with pytest.raises(ConfigError, match="started cluster"):
        c.add_hosts(["n2"])
    assert_no_leftovers(c.run_id)


@needs_root
def test_an_added_host_may_hold_capabilities_and_be_slowed_through_the_link_proxy() -> None:
    from infragym.nemesis import Latency

    admin = "ip addr add {vip}/24 dev eth0 && echo ADMIN-OK"

    async def main(c: Cluster) -> None:
        first = Latency(["n1"], 0.01, label="first")
        await first.apply_async(c)  # builds the link proxy before the growth
        (n3,) = await asyncio.to_thread(c.add_hosts, ["n3"], net_admin=["n3"])
        vip = c.free_addresses()[0]
        r = n3.run(["sh", "-c", admin.format(vip=vip)])
        assert b"ADMIN-OK" in r.stdout, r.stderr
        assert b"ADMIN-OK" not in c.host("n2").run(["sh", "-c", admin.format(vip=vip)]).stdout
        start_http(c.host("n1"))
        start_http(n3)
        # the proxy (which speaks no ARP) relays the new host's links: it learnt its MAC
        second = Latency(["n3"], 0.01, label="second")
        await second.apply_async(c)
        try:
            got = await asyncio.to_thread(_get, n3, c.host("n1").address, 8080)
            assert got == "n1"
            got = await asyncio.to_thread(_get, c.host("n2"), n3.address, 8080)
            assert got == "n3"
        finally:
            await second.heal_async(c)
            await first.heal_async(c)

    with Cluster(2) as c:
        asyncio.run(main(c))
        run_id = c.run_id
    assert_no_leftovers(run_id)


@needs_root
def test_an_address_a_host_holds_as_a_virtual_ip_is_not_handed_to_a_new_host() -> None:
    """n1 (net_admin) claims the address the next host would get; the growth is refused
    until it lets it go, and the client then reaches the new host at once (its ARP cache
    still held n1's MAC for that address: the new host's entry is permanent)."""
    import subprocess

    from infragym import ResourceError

    with Cluster(2, net_admin=["n1"]) as c:
        n1 = c.host("n1")
        vip = c.free_addresses()[0]
        r = n1.run(["ip", "addr", "add", f"{vip}/24", "dev", "eth0"])
        assert r.returncode == 0, r.stderr
        start_http(n1)
        s = c.client_socket()
        s.settimeout(3)
        s.connect((vip, 8080))  # the client learns n1's MAC for the address
        s.close()
        with pytest.raises(ResourceError, match=rf"in use: {vip} \(by n1\)"):
            c.add_hosts(["n3"])
        assert c.names == ["n1", "n2"]
        assert n1.run(["ip", "addr", "del", f"{vip}/24", "dev", "eth0"]).returncode == 0
        (n3,) = c.add_hosts(["n3"])
        assert n3.address == vip
        neigh = subprocess.run(["ip", "-n", c.client_netns, "neigh", "show", vip],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert n3.mac in neigh and "PERMANENT" in neigh, neigh
        start_http(n3)
        s = c.client_socket()
        s.settimeout(3)
        s.connect((vip, 8080))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert data.split(b"\r\n\r\n")[-1] == b"n3"
        s.close()
        run_id = c.run_id
    assert_no_leftovers(run_id)
