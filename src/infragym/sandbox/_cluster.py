"""A cluster: N hosts on one bridge, with no route anywhere else.

The run is recorded on disk *before* any kernel object exists, so a run killed at any
point can be swept by ``infragym cleanup``. Building uses one ``ip -batch`` for the root
namespace and one per host in parallel, which is what makes a 3-host cluster take
milliseconds. Teardown is idempotent and runs on normal exit, on exceptions, on SIGINT and
SIGTERM (converted to exceptions so ``with`` blocks unwind), and at interpreter exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from .._errors import CapabilityError, ConfigError, ResourceError
from . import _state
from ._cgroup import (
    PARENT,
    HostCgroup,
    Limits,
    remove_run_tree,
    run_cpu_stall_us,
    set_run_cpu_shares,
)
from ._host import FAKETIME_LIB, HOSTS_FILE, Host
from ._identity import Identity, identity_of
from ._lifecycle import Lifecycle
from ._netns import run_in_netns, socket_in_netns
from ._network import CLIENT, LINK_PROXY, Network
from ._options import (
    check_limits,
    check_size,
    per_host,
    validate_names,
    validate_net_admin,
)
from ._switch import Port, Switch
from ._sys import (
    ip_batch,
    mount_tmpfs,
    mounts_under,
    umount,
)
from ._tree import copy_tree, remove_tree

# what the artifacts keep of a host's logs, whatever the host left there
ARTIFACT_MAX_NAMES = 1000
ARTIFACT_MAX_BYTES = 16 << 20
ARTIFACT_MAX_DEPTH = 32
PLATFORM_SIZE = 1 << 20  # a host's .platform disk: its hosts file, clock offset, fault reports
PLATFORM_INODES = 1024
T = TypeVar("T")


def guard_project_range() -> None:
    """Make sure nothing in the machine's own namespace routes to the project's range (the
    bridges carry no address): without it, a packet sent there from outside every cluster
    would leave by the default route, to addresses that are not ours. A route the machine
    already has for exactly that range is its own and is left alone."""
    r = subprocess.run(
        ["ip", "route", "show", "exact", str(_state.NETWORK)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode == 0 and not r.stdout.strip():  # a racing cluster may add it first
        subprocess.run(
            ["ip", "route", "add", "unreachable", str(_state.NETWORK)],
            capture_output=True,
            check=False,
        )


class Cluster(Lifecycle):
    """N hosts on a private bridge in 198.18.0.0/15.

    Use as a context manager (``with Cluster(3) as c:``) or call :meth:`start` and
    :meth:`close`. ``artifacts_dir``, if given, receives each host's logs at close.

    ``net_admin`` (True for every host, or the names of some) grants those hosts'
    processes CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE over their own network
    namespace and nothing else (:mod:`._userns`): they may add addresses (a virtual IP),
    send gratuitous ARP, change routes and their own nft rules, as keepalived needs. The
    switch (:mod:`._switch`) keeps them from claiming another endpoint's address or MAC,
    seeing other hosts' traffic or reaching the machine, and faults are enforced there,
    out of their reach. The hosts run as the run's own uid and gid (:attr:`identity`, see
    :mod:`._identity`), which no other run shares. Of the subnet, the hosts hold the
    first addresses, the client the last (``.254``) and the link proxy the one before;
    the rest are free for virtual IPs (:meth:`free_addresses`).

    ``host_limits`` and ``data_sizes`` give some hosts their own limits (cgroup: CPU quota,
    memory, pids) and data disk size instead of ``limits`` and ``data_size``: a
    heterogeneous cluster (a task's roles, ``Variant.cluster_options``).
    """

    KIND = "cluster"

    def __init__(
        self,
        hosts: int | Sequence[str] = 3,
        *,
        limits: Limits | None = None,
        data_size: int = 256 << 20,
        scratch_size: int = 64 << 20,
        artifacts_dir: str | Path | None = None,
        faketime: bool = False,
        app: str | Path | None = None,
        hidden: Sequence[str | Path] = (),
        net_admin: bool | Collection[str] = False,
        host_limits: Mapping[str, Limits] | None = None,
        data_sizes: Mapping[str, int] | None = None,
    ) -> None:
        self.names = validate_names(hosts)
        self.net_admin = validate_net_admin(net_admin, self.names)
        if faketime and not Path(FAKETIME_LIB).exists():
            raise CapabilityError(
                f"clock skew needs libfaketime ({FAKETIME_LIB} is missing): "
                "`apt-get install -y faketime` or run ./setup.sh"
            )
        self.faketime = faketime
        for what, size in (("data_size", data_size), ("scratch_size", scratch_size)):
            check_size(what)(size)
        if limits is not None:
            check_limits(limits)
        self.limits = limits or Limits()
        self.data_size = data_size
        self.host_limits = per_host("host_limits", host_limits, self.names, check_limits)
        self.data_sizes = per_host("data_sizes", data_sizes, self.names, check_size("a data size"))
        self.scratch_size = scratch_size
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self.app_source = Path(app) if app is not None else None
        self.hidden = tuple(Path(p) for p in hidden)
        if self.app_source is not None and not self.app_source.is_dir():
            raise ConfigError(f"app {self.app_source} is not a directory")
        self._set_run_id(_state.new_run_id())
        self.hosts: list[Host] = []
        self.identity: Identity | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self.client_address = ""
        self.network: Network | None = None
        self._record: _state.RunRecord | None = None
        self._pending: list[Host] = []  # hosts add_hosts is building
        self._tools: tuple[str, str] = ("bwrap", "setpriv")
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        # event loops of run_client, so teardown can end their work instead of waiting
        self._clients: set[tuple[asyncio.AbstractEventLoop, asyncio.Task[object]]] = set()
        self._clients_lock = threading.Lock()
        self._drawn: dict[str, str] = {}  # address -> the endpoint it was drawn for
        self._current: dict[str, str] = {}  # endpoint -> the address it holds from a draw

    def _set_run_id(self, run_id: str) -> None:
        self.run_id = run_id
        self.bridge = _state.bridge_name(run_id)
        self.root = _state.DATA_ROOT / run_id
        self.client_netns = _state.netns_name(run_id, CLIENT)

    # -- lifecycle -----------------------------------------------------------------------

    def _claim(self) -> None:
        """Take a run id no other run holds, recorded on disk before anything is made."""
        self._record = _state.claim_record(self.run_id, self.names)
        self._set_run_id(self._record.run_id)

    def _build(self, bwrap: str, setpriv: str) -> None:
        assert self._record is not None
        self._tools = (bwrap, setpriv)
        self.subnet = _state.allocate_subnet(self.run_id)
        self._record.subnet = str(self.subnet)
        self._record.save()
        ident = self.identity = identity_of(self.run_id)
        net = self.network = Network(self.run_id, self.subnet)
        for i, name in enumerate(self.names):
            cg = HostCgroup(f"{PARENT}/{self.run_id}/{name}")
            port = net.host_port(name, i)
            root = self.root / name
            admin = name in self.net_admin
            self.hosts.append(Host(port, root, cg, ident, bwrap, setpriv, admin))
        self.client_address = net.client.address
        guard_project_range()
        net.start([h.port for h in self.hosts], self.net_admin, ident.uid)
        if self.app_source is not None:
            # one read-only copy for every host, readable by the unprivileged host user
            app_dir = self.root / "app"
            shutil.copytree(self.app_source, app_dir, symlinks=True)
            _make_world_readable(app_dir)
            for h in self.hosts:
                h.app_dir = app_dir
        hosts_file = _hosts_lines(self.hosts, head=True)
        for h in self.hosts:
            self._prepare(h, hosts_file)
        net.finish()

    def _prepare(self, h: Host, hosts_file: str) -> None:
        """A host's cgroup, disks, directories and files (its network exists already)."""
        ident = self.identity
        assert ident is not None
        h.hidden = self.hidden
        h.cgroup.create(self.host_limits.get(h.name, self.limits))
        # the host's scratch disk (logs, etc, tmp) and its data disk are sized tmpfs, so
        # a host cannot fill the machine's disk; DiskFull shrinks the data one
        h.root.mkdir(parents=True, exist_ok=True)
        mount_tmpfs(h.root, self.scratch_size, mode=0o755)
        for d in (h.data_dir, h.logs_dir, h.etc_dir, h.tmp_dir, h.platform_dir):
            d.mkdir(exist_ok=True)
        for d in (h.logs_dir, h.etc_dir):
            os.chown(d, ident.uid, ident.gid)
        h.tmp_dir.chmod(0o1777)
        # the platform's files (the hosts file, the clock offset, what its processes on
        # the host report) on a small disk of their own: a host that fills its scratch
        # disk cannot make them fail (removed with the host's other mounts)
        mount_tmpfs(h.platform_dir, PLATFORM_SIZE, mode=0o755, inodes=PLATFORM_INODES)
        size = self.data_sizes.get(h.name, self.data_size)
        mount_tmpfs(h.data_dir, size, mode=0o755, uid=ident.uid, gid=ident.gid)
        (h.platform_dir / HOSTS_FILE).write_text(hosts_file)
        if self.faketime:
            h.faketime = True
            h.set_clock_offset(0.0)

    def add_hosts(
        self,
        names: Sequence[str],
        *,
        host_limits: Mapping[str, Limits] | None = None,
        data_sizes: Mapping[str, int] | None = None,
        net_admin: Collection[str] = (),
    ) -> list[Host]:
        """Add hosts ``names`` to the running cluster (it grows; it never shrinks) and
        return them. Each is built as the first ones were: the same app copy and hidden
        paths, its cgroup (``host_limits``, else the cluster's ``limits``), data disk
        (``data_sizes``, else ``data_size``), capabilities (``net_admin``: the names of
        those granted them) and the next addresses of the subnet after the hosts'. Every
        host's ``/etc/hosts`` gains their lines, also for processes already running. They
        are removed with the cluster; a failure midway leaves what was made to
        :meth:`close`, the hosts already there untouched."""
        if isinstance(names, str):
            raise ConfigError(f"add_hosts takes a list of host names, not {names!r}")
        new = list(names)
        with self._lock:
            if not self._started or self._closed:
                raise ConfigError("add_hosts needs a started cluster that is not closed")
            net = self._network()
            ident = self.identity
            assert ident is not None and self._record is not None
            if not new:
                raise ConfigError("add_hosts needs at least one host name")
            everyone = validate_names([*self.names, *new])
            clash = [n for n in new if n in net.ports]
            if clash:
                raise ConfigError(f"{', '.join(clash)} already names an endpoint of the cluster")
            if isinstance(net_admin, bool):
                raise ConfigError(
                    "add_hosts: net_admin is a list of the new hosts' names to grant "
                    f"capabilities, not {net_admin!r}"
                )
            admin = validate_net_admin(net_admin, new)
            limits = per_host("host_limits", host_limits, new, check_limits)
            sizes = per_host("data_sizes", data_sizes, new, check_size("a data size"))
            first = len(self.hosts) + len(self._pending)
            ports = [net.host_port(n, first + i) for i, n in enumerate(new)]
            taken = {p.address for p in net.ports.values()} | set(self._drawn)
            held = [p.address for p in ports if p.address in taken]
            if held:
                raise ResourceError(
                    f"the addresses the new hosts would take ({', '.join(held)}) are held by "
                    "an endpoint of the cluster"
                )
            vips = net.held_addresses()  # a net_admin host's virtual IPs too
            held = [f"{p.address} (by {vips[p.address]})" for p in ports if p.address in vips]
            if held:
                raise ResourceError(
                    f"the addresses the new hosts would take are in use: {', '.join(held)}; "
                    "release them (ip addr del) before the cluster grows"
                )
            self._record.hosts = everyone
            self._record.save()
            added = [
                Host(p, self.root / p.name, HostCgroup(f"{PARENT}/{self.run_id}/{p.name}"),
                     ident, self._tools[0], self._tools[1], p.name in admin)
                for p in ports
            ]  # fmt: skip
            self._pending += added  # torn down with the cluster whatever happens next
            self.host_limits.update(limits)
            self.data_sizes.update(sizes)
            net.add_hosts(ports, admin, ident.uid)
            if self.app_source is not None:
                for h in added:
                    h.app_dir = self.root / "app"
            hosts_file = _hosts_lines([*self.hosts, *added], head=True)
            for h in added:
                self._prepare(h, hosts_file)
            lines = _hosts_lines(added).encode()
            for h in self.hosts:
                # appended in place: a reader sees the old lines, then the new ones too
                with open(h.platform_dir / HOSTS_FILE, "ab") as fh:
                    fh.write(lines)
            self._pending = [h for h in self._pending if h not in added]
            self.hosts = [*self.hosts, *added]
            self.names = everyone
            self.net_admin = frozenset(self.net_admin | admin)
            return added

    def close(self) -> None:
        """Remove every process, namespace, link, cgroup, mount and directory. Idempotent.

        SIGINT, SIGTERM and SIGHUP are held back until teardown is over (then delivered),
        so a Ctrl-C cannot leave a half-removed cluster; a concurrent call waits for this
        one to finish.
        """
        self._stop_clients()  # their sockets are about to go: end their work now
        super().close()

    def _teardown(self) -> None:
        # Each step runs whatever the ones before raised (a RecursionError, a MemoryError
        # as much as an OSError): what the hosts left must never leak the rest.
        errors: list[str] = []  # what may have been left behind
        unsaved: list[str] = []  # logs that could not be saved (nothing leaks)

        def step(what: str, fn: Callable[[], object], into: list[str] = errors) -> None:
            try:
                fn()
            except Exception as exc:
                into.append(f"{what}: {type(exc).__name__}: {exc}")

        hosts = [*self.hosts, *self._pending]
        for h in hosts:
            step(f"cgroup of {h.name}", partial(_remove_host_processes, h))
        for h in hosts:
            step(f"saving logs of {h.name}", partial(self._save_artifacts, h), unsaved)
        step("network", self._remove_network)
        step("cgroups", lambda: remove_run_tree(self.run_id))
        step("mounts", self._remove_mounts)
        step("directories", lambda: remove_tree(self.root))
        # after a failed step the record (and its subnet) stays for `infragym cleanup`
        if not errors and self._record is not None:
            step("run record", self._record.remove)
        elif not errors and self.subnet is not None:
            step("subnet", lambda: _state.release_subnet(str(self.subnet)))
        if errors or unsaved:
            raise ResourceError(
                f"cluster {self.run_id} was not fully removed ({'; '.join(errors + unsaved)}); "
                "run `infragym cleanup`"
                if errors
                else f"cluster {self.run_id} was removed but its logs were not all saved "
                f"({'; '.join(unsaved)})"
            )

    def _remove_network(self) -> None:
        if self.network is not None:
            self.network.remove()

    def _remove_mounts(self) -> None:
        failed = [mp for mp in mounts_under(str(self.root)) if not umount(mp)]
        if failed:
            raise ResourceError(f"cannot unmount {', '.join(failed)}")

    def _save_artifacts(self, h: Host) -> None:
        """Copy a bounded part of a host's logs (the code under test owns that directory:
        only plain files and directories, never following a link or reading a pipe); a
        note next to the copy says what was left out."""
        if self.artifacts_dir is None or not h.logs_dir.exists():
            return
        dest = self.artifacts_dir / "hosts" / h.name / "logs"
        report = copy_tree(
            h.logs_dir,
            dest,
            max_depth=ARTIFACT_MAX_DEPTH,
            max_names=ARTIFACT_MAX_NAMES,
            max_bytes=ARTIFACT_MAX_BYTES,
            links=False,
        )
        if not report.complete:
            (dest.parent / "logs-left-out.txt").write_text(report.note())

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the client's point of view ----------------------------------------------------

    def client_socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM
    ) -> socket.socket:
        """A socket in the client namespace, which reaches every host and nothing else."""
        return socket_in_netns(self.client_netns, family, type)

    def run_client(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in an event loop whose thread lives in the client namespace.

        Every socket that loop opens (an aiohttp session, say) reaches the hosts. Blocks
        until done; call it through ``asyncio.to_thread`` to run beside other work.
        """

        async def tracked() -> T:
            task = asyncio.current_task()
            assert task is not None
            entry: tuple[asyncio.AbstractEventLoop, asyncio.Task[object]] = (
                asyncio.get_running_loop(),
                task,
            )
            with self._clients_lock:
                self._clients.add(entry)
            try:
                return await fn()
            finally:
                with self._clients_lock:
                    self._clients.discard(entry)

        return run_in_netns(self.client_netns, lambda: asyncio.run(tracked()))

    def _stop_clients(self) -> None:
        """Cancel what ``run_client`` loops are running (a teardown, a Ctrl-C or SIGTERM):
        otherwise the caller's exit waits for a workload to run its whole course."""
        with self._clients_lock:
            for loop, task in list(self._clients):
                with contextlib.suppress(RuntimeError):  # that loop has just closed
                    loop.call_soon_threadsafe(task.cancel)

    def cpu_stall_s(self) -> float | None:
        """Seconds in which some process of the cluster's hosts waited for a CPU since it
        was made (cgroup v2 pressure of the run's group, removed hosts included; None
        where the machine has no cgroup v2)."""
        us = run_cpu_stall_us(self.run_id)
        return None if us is None else us / 1e6

    def set_cpu_shares(self, shares: int) -> None:
        """Weigh this run's hosts together at ``shares`` against other runs' hosts under
        the cpu controller (default 1024)."""
        set_run_cpu_shares(self.run_id, shares)

    def cpu_usage_s(self) -> dict[str, float]:
        """CPU seconds each host's processes have used so far (exited ones included), by
        host name; hosts already removed are left out. The client namespace is not a host:
        the load and the nemesis are not counted."""
        usage = {h.name: h.cpu_usage_s() for h in self.hosts}
        return {name: s for name, s in usage.items() if s is not None}

    # -- access --------------------------------------------------------------------------

    @property
    def switch(self) -> Switch:
        """The root-namespace side of the bridge, where network faults put their rules."""
        return self._network().switch

    def port(self, name: str) -> Port:
        """Where host ``name``, the client (``"client"``) or the link proxy
        (``"link-proxy"``, whose namespace :meth:`link_proxy` builds) meets the bridge."""
        if name == CLIENT:
            return self._network().client
        if name == LINK_PROXY:
            return self._network().proxy
        if name not in self.names and name in self._network().ports:
            return self._network().ports[name]
        return self.host(name).port

    def link_proxy(self) -> Port:
        """The link proxy's namespace on the bridge, built on first use (see
        :class:`~._network.Network`); removed with the cluster."""
        return self._network().link_proxy()

    def free_addresses(self) -> list[str]:
        """The addresses of the subnet no endpoint holds and none was drawn for
        (:meth:`draw_address`): a host granted ``net_admin`` may claim one (a virtual IP)
        and announce it by gratuitous ARP."""
        net = self._network()
        taken = {p.address for p in (net.client, net.proxy, *net.ports.values())}
        taken |= {h.address for h in self.hosts} | set(self._drawn)
        return [str(a) for a in net.subnet.hosts() if str(a) not in taken]

    def endpoint(self, name: str) -> Port:
        """A namespace of the platform's on the cluster's bridge besides the client's (an
        attacker's, say), built on first use and removed with the cluster. It reaches every
        host and nothing else, as the client does; its sockets come from
        :meth:`endpoint_socket`."""
        if name in (CLIENT, LINK_PROXY) or name in self.names:
            raise ConfigError(f"{name!r} names the client, the link proxy or a host")
        validate_names([name])
        return self._network().add_endpoint(name)

    def draw_address(
        self, endpoint: str, rng: random.Random, pool: Collection[str] | None = None
    ) -> str:
        """Give ``endpoint`` (``"client"`` or one of :meth:`endpoint`) a new address drawn
        by ``rng`` from ``pool`` (default: every free address of the subnet), in place of
        the one it drew last; return it. Bind a socket to it (:meth:`endpoint_socket`) to
        send from it. An address drawn for one endpoint is never drawn for another in this
        cluster (the hosts' ARP caches would still send its replies to the first), so the
        endpoints' addresses are interleaved in one range and a host cannot tell them
        apart by address."""
        port = self.port(endpoint)
        with self._lock:
            free = set(self.free_addresses())
            mine = {a for a, e in self._drawn.items() if e == endpoint}
            choices = sorted((free | mine) & set(pool) if pool is not None else free | mine)
            choices = [a for a in choices if a != self._current.get(endpoint)] or choices
            if not choices:
                raise ResourceError(f"no address left to draw for {endpoint!r}")
            address = rng.choice(choices)
            lines = [f"addr add {address}/32 dev eth0"]
            if (old := self._current.get(endpoint)) is not None:
                lines.insert(0, f"addr del {old}/32 dev eth0")
            ip_batch(lines, netns=port.netns)
            self._drawn[address] = endpoint
            self._current[endpoint] = address
            return address

    def endpoint_socket(
        self, endpoint: str, source: str | None = None, type: int = socket.SOCK_STREAM
    ) -> socket.socket:
        """An IPv4 socket in ``endpoint``'s namespace (``"client"`` or one of
        :meth:`endpoint`), bound to ``source`` (an address it holds) if given."""
        sock = socket_in_netns(self.port(endpoint).netns, socket.AF_INET, type)
        if source is not None:
            try:
                sock.bind((source, 0))
            except BaseException:
                sock.close()
                raise
        return sock

    def _network(self) -> Network:
        if self.network is None:
            raise ConfigError("the cluster is not started: call start() or use `with`")
        return self.network

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise ConfigError(f"no host {name!r} in this cluster (hosts: {', '.join(self.names)})")

    def __getitem__(self, name: str) -> Host:
        return self.host(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __repr__(self) -> str:
        return f"Cluster({self.run_id}, {self.names}, {self.subnet})"


def _hosts_lines(hosts: Sequence[Host], head: bool = False) -> str:
    """The ``/etc/hosts`` lines of ``hosts`` (with the localhost line first if ``head``)."""
    return ("127.0.0.1 localhost\n" if head else "") + "".join(
        f"{h.address} {h.name}\n" for h in hosts
    )


def _remove_host_processes(h: Host) -> None:
    if h.cgroup.frozen():
        h.cgroup.thaw()
    h.kill_all()
    h.cgroup.remove()


def _make_world_readable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = Path(dirpath) / f
            if not p.is_symlink():
                mode = p.stat().st_mode
                p.chmod(0o755 if mode & 0o111 else 0o644)
        del dirnames
