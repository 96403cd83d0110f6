"""Listening ports asked of the kernel by sock_diag netlink (``Host.wait_port``'s way):
the listeners of the asking namespace, IPv4 and IPv6, and nothing else (not a closed
listener, not a connection's port, not another namespace's listener)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
from conftest import needs_root, start_http

from infragym import InfraGymError
from infragym.sandbox import Cluster
from infragym.sandbox._sockdiag import diag_socket, listening_tcp_ports


def _listener(family: int = socket.AF_INET) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    s.listen()
    return s


@pytest.fixture
def diag() -> Iterator[socket.socket]:
    with closing(diag_socket()) as s:
        yield s


def test_a_listener_is_listed_until_it_closes(diag: socket.socket) -> None:
    lst = _listener()
    port = lst.getsockname()[1]
    assert port in listening_tcp_ports(diag)
    lst.close()
    assert port not in listening_tcp_ports(diag)


def test_an_ipv6_listener_is_listed(diag: socket.socket) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        lst = _listener(socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with lst:
        assert lst.getsockname()[1] in listening_tcp_ports(diag)


def test_a_connections_own_port_is_not_a_listener(diag: socket.socket) -> None:
    with _listener() as lst:
        client = socket.create_connection(lst.getsockname())
        server, _ = lst.accept()
        with client, server:
            ports = listening_tcp_ports(diag)
            assert client.getsockname()[1] not in ports
            assert lst.getsockname()[1] in ports


def test_many_listeners_span_several_netlink_reads(diag: socket.socket) -> None:
    # a dump longer than one recv: every listener in it, none lost between the reads
    listeners = [_listener() for _ in range(300)]
    try:
        ports = listening_tcp_ports(diag)
        assert {s.getsockname()[1] for s in listeners} <= ports
    finally:
        for s in listeners:
            s.close()


@needs_root
def test_a_hosts_wait_port_sees_its_own_listener_not_the_machines(cluster3: Cluster) -> None:
    host = cluster3.hosts[0]
    with _listener() as machine:  # a listener of the machine's namespace, not the host's
        t = time.monotonic()
        with pytest.raises(InfraGymError, match="nothing listens"):
            host.wait_port(machine.getsockname()[1], timeout=0.3)
        assert time.monotonic() - t < 2.0
    start_http(host, 8123)  # waits for the port
    host.wait_port(8123, timeout=1.0)
    with pytest.raises(InfraGymError, match="nothing listens"):
        cluster3.hosts[1].wait_port(8123, timeout=0.3)  # another host's namespace


@needs_root
def test_without_sock_diag_wait_port_reads_the_proc_tables(
    cluster3: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infragym.sandbox._host as host_module

    def refused() -> socket.socket:
        raise OSError(93, "Protocol not supported")  # a kernel without sock_diag

    monkeypatch.setattr(host_module, "diag_socket", refused)
    host = cluster3.hosts[0]
    start_http(host, 8124)
    host.wait_port(8124, timeout=1.0)
    with pytest.raises(InfraGymError, match="nothing listens"):
        cluster3.hosts[1].wait_port(8124, timeout=0.3)
