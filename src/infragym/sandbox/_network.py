"""A cluster's network: one bridge, a veth per endpoint, the guard on the bridge's ports,
and, once a fault asks for it, the link proxy's namespace.

Endpoints are the hosts, the client namespace (where workloads and graders run) and the
link proxy. Each gets a fixed MAC (:func:`~._state.mac_address`) and address, so the
switch's rules in the root namespace (:mod:`._switch`) can name them before they exist.
Building takes one ``ip -batch`` in the root namespace and one per namespace, run in
parallel while the caller prepares the hosts' disks; removing takes one batch.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

from .._errors import ResourceError
from . import _state
from ._netns import run_in_netns
from ._switch import Port, Switch, wait_deleted
from ._sys import (
    NETNS_DIR,
    abort_sockets,
    finish,
    ip_batch,
    list_links,
    run,
    start,
    wait_links_gone,
)
from ._userns import add_owned_netns

__all__ = [
    "CLIENT",
    "LINK_PROXY",
    "LINK_PROXY_LOCAL_MARK",
    "LINK_PROXY_PORTS",
    "Network",
]

CLIENT = "client"
CLIENT_INDEX = 99
LINK_PROXY = "link-proxy"  # not a valid host name: no host can take it
LINK_PROXY_INDEX = 98
EXTRA_INDEXES = range(97, 89, -1)
"""The indexes (MACs, veths) of the extra endpoints :meth:`Network.add_endpoint` builds."""
LINK_PROXY_LOCAL_MARK = 0x16A70001
"""Packets the link proxy's namespace marks so to deliver them to its own (transparent)
sockets whatever their destination address."""
LINK_PROXY_PORTS = (61000, 65535)
"""The source ports the link proxy's namespace picks, above the hosts' ephemeral range
(32768-60999), so the replies to its upstream connections can be told apart."""
_LOCAL_TABLE = 100


class Network:
    """The bridge and endpoints of one run. ``ports`` holds every endpoint built so far."""

    def __init__(self, run_id: str, subnet: ipaddress.IPv4Network) -> None:
        self.run_id = run_id
        self.subnet = subnet
        self.bridge = _state.bridge_name(run_id)
        self.switch = Switch(run_id, self.bridge)
        self.ports: dict[str, Port] = {}
        self._procs: list[tuple[str, subprocess.Popen[str]]] = []
        self._lock = threading.Lock()
        addrs = list(subnet.hosts())
        self.client = self._port(CLIENT, CLIENT_INDEX, str(addrs[-1]))
        self.proxy = self._port(LINK_PROXY, LINK_PROXY_INDEX, str(addrs[-2]))

    def _port(self, name: str, index: int, address: str) -> Port:
        return Port(
            name,
            _state.netns_name(self.run_id, name),
            address,
            _state.mac_address(self.run_id, index),
            _state.veth_name(self.run_id, index),
            index,
        )

    def host_port(self, name: str, index: int) -> Port:
        return self._port(name, index, str(list(self.subnet.hosts())[index]))

    def start(self, hosts: Sequence[Port], owned: Collection[str], uid: int) -> None:
        """Create the namespaces, the bridge and the veths, and start configuring each
        namespace (:meth:`finish` waits). ``owned`` names the hosts whose namespace
        belongs to a user namespace of its own (:mod:`._userns`), mapping ``uid`` (the
        uid and gid its processes run as)."""
        ends = [*hosts, self.client]
        for p in ends:
            self.ports[p.name] = p
            if p.name in owned:
                add_owned_netns(p.netns, uid)
        lines = [f"netns add {p.netns}" for p in ends if p.name not in owned]
        # no IPv6 link-local addresses anywhere, and the bridge has no address at all:
        # it must give hosts no path into the root namespace
        lines += [
            f"link add {self.bridge} type bridge",
            f"link set {self.bridge} addrgenmode none",
            f"link set {self.bridge} up",
        ]
        for p in ends:
            lines += self._attach(p)
        ip_batch(lines)
        for p in ends:
            self._configure(p, [])

    def add_hosts(self, hosts: Sequence[Port], owned: Collection[str], uid: int) -> None:
        """Put more hosts on the running bridge (a cluster that grows): their namespaces,
        veths and addresses as :meth:`start` and :meth:`finish` make them, then the guard
        again with them in it. The link proxy, if built, learns their MACs (it speaks no
        ARP). Each port is recorded before it is made, so :meth:`remove` takes what a
        failure left."""
        with self._lock:
            for p in hosts:
                self.ports[p.name] = p
                if p.name in owned:
                    add_owned_netns(p.netns, uid)
            lines = [f"netns add {p.netns}" for p in hosts if p.name not in owned]
            for p in hosts:
                lines += self._attach(p)
            ip_batch(lines)
            for p in hosts:
                self._configure(p, [])
            self._wait()
            for p in hosts:
                run_in_netns(p.netns, _allow_low_ports)
            neighbours = [
                f"neigh replace {p.address} lladdr {p.mac} dev eth0 nud permanent" for p in hosts
            ]
            if LINK_PROXY in self.ports:
                ip_batch(neighbours, netns=self.proxy.netns)
            # the client's ARP cache may still map a new host's address to a host that
            # held it as a virtual IP: it learns the new host's MAC for good
            ip_batch(neighbours, netns=self.client.netns)
            self.guard()

    def held_addresses(self) -> dict[str, str]:
        """Every IPv4 address of the subnet some endpoint's namespace holds (a virtual
        IP a ``net_admin`` host added included), to the endpoint's name."""
        held: dict[str, str] = {}
        with self._lock:
            ports = [p for p in self.ports.values() if p.name != LINK_PROXY]
        for p in ports:
            out = run(["ip", "-n", p.netns, "-j", "-4", "addr", "show"], check=False).stdout
            try:
                links = json.loads(out or "[]")
            except ValueError:
                continue
            for link in links:
                for a in link.get("addr_info", []):
                    local = a.get("local")
                    if local and ipaddress.ip_address(local) in self.subnet:
                        held.setdefault(local, p.name)
        return held

    def _attach(self, p: Port) -> list[str]:
        return [
            f"link add {p.link} type veth peer name eth0 address {p.mac} netns {p.netns}",
            f"link set {p.link} addrgenmode none",
            f"link set {p.link} master {self.bridge} up",
        ]

    def _configure(self, p: Port, extra: list[str]) -> None:
        script = (
            f"link set eth0 addrgenmode none\naddr add {p.address}/{self.subnet.prefixlen} "
            "dev eth0\nlink set eth0 up\nlink set lo up\n" + "".join(f"{x}\n" for x in extra)
        )
        self._procs.append((p.netns, start(["ip", "-n", p.netns, "-batch", "-"], script)))

    def finish(self) -> None:
        """Wait for every namespace's configuration, then put the guard on the bridge."""
        self._wait()
        for p in self.ports.values():
            if p.name != LINK_PROXY:
                # services run without capabilities; let them bind ports below 1024 anyway
                run_in_netns(p.netns, _allow_low_ports)
        self.guard()

    def guard(self) -> None:
        """Put (back) the guard on the bridge's ports (see :mod:`._switch`)."""
        guarded = [p for p in self.ports.values() if p.name != LINK_PROXY]
        self.switch.guard(guarded, [self.proxy], str(self.subnet))

    def link_proxy(self) -> Port:
        """The link proxy's namespace, built on first use: a router on the bridge that
        forwards what it does not terminate itself, delivers packets of its transparent
        sockets locally (:data:`LINK_PROXY_LOCAL_MARK`) and picks its source ports in
        :data:`LINK_PROXY_PORTS`. Only the switch's diversions send it traffic: the guard
        drops every frame an endpoint addresses to it, so it speaks no ARP and knows each
        endpoint's MAC from the start."""
        with self._lock:
            if LINK_PROXY in self.ports:
                return self.proxy
            p = self.proxy
            ip_batch([f"netns add {p.netns}", *self._attach(p)])
            # no ARP: the guard drops whatever an endpoint sends to this MAC, answers too
            neighbours = [
                f"neigh replace {e.address} lladdr {e.mac} dev eth0 nud permanent"
                for e in self.ports.values()
            ]
            self._configure(
                p,
                [
                    "link set eth0 arp off",
                    *neighbours,
                    f"rule add fwmark {LINK_PROXY_LOCAL_MARK:#x} lookup {_LOCAL_TABLE}",
                    f"route add local 0.0.0.0/0 dev lo table {_LOCAL_TABLE}",
                ],
            )
            self._wait()
            run_in_netns(p.netns, _router)
            self.ports[LINK_PROXY] = p
            return p

    def add_endpoint(self, name: str) -> Port:
        """Another namespace on the bridge like the client's (the platform's, unprivileged
        to no one): guarded as every endpoint is, holding the next free address from the top
        of the subnet (below the link proxy's). Built once per name; the same port after."""
        with self._lock:
            if name in self.ports:
                return self.ports[name]
            extra = [p for p in self.ports.values() if p.index in EXTRA_INDEXES]
            if len(extra) == len(EXTRA_INDEXES):
                raise ResourceError(
                    f"a cluster has at most {len(EXTRA_INDEXES)} extra endpoints; "
                    f"cannot add {name!r}"
                )
            index = EXTRA_INDEXES[len(extra)]
            addrs = list(self.subnet.hosts())
            p = self._port(name, index, str(addrs[-3 - len(extra)]))
            ip_batch([f"netns add {p.netns}", *self._attach(p)])
            self._configure(p, [])
            self._wait()
            self.ports[name] = p
            self.guard()
            return p

    def _wait(self) -> None:
        procs, self._procs = self._procs, []
        failed = [f"{ns}: {err}" for ns, p in procs if (err := finish(p)) is not None]
        if failed:
            raise ResourceError(f"cannot configure the network of {'; '.join(failed)}")

    def remove(self) -> None:
        """Remove every namespace, link and switch table of the run. Idempotent."""
        # The tables' deletion waits for an RCU grace period: it runs while the kernel
        # removes the namespaces. Deleting the namespaces first lets the kernel unregister
        # every veth in one batch (one grace period instead of one per link); then wait
        # until they are gone so nothing outlives the cluster.
        deleting = self.switch.close()
        try:
            names = [_state.netns_name(self.run_id, n) for n in self.ports] + [self.proxy.netns]
            existing = [ns for ns in dict.fromkeys(names) if (NETNS_DIR / ns).exists()]
            # what the hosts' dead processes left open would keep a namespace, and its
            # veth, for up to a minute and more
            abort_sockets(existing)
            lines = [f"netns del {ns}" for ns in existing]
            if Path(f"/sys/class/net/{self.bridge}").exists():
                lines.append(f"link del {self.bridge}")
            ip_batch(lines, check=False)
            veths = [p.link for p in self.ports.values()]
            wait_links_gone(veths, timeout=10.0)
            left = [n for n in list_links() if _state.run_id_of_link(n) == self.run_id]
            ip_batch([f"link del {n}" for n in left], check=False)
        finally:
            wait_deleted(deleting, self.run_id)


def _allow_low_ports() -> None:
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", "w") as fh:
        fh.write("0")


def _router() -> None:
    settings = {
        "ipv4/ip_forward": "1",
        "ipv4/conf/all/send_redirects": "0",
        "ipv4/conf/eth0/send_redirects": "0",
        "ipv4/conf/all/rp_filter": "0",
        "ipv4/conf/eth0/rp_filter": "0",
        "ipv4/ip_local_port_range": f"{LINK_PROXY_PORTS[0]} {LINK_PROXY_PORTS[1]}",
    }
    for key, value in settings.items():
        with open(f"/proc/sys/net/{key}", "w") as fh:
            fh.write(value)
