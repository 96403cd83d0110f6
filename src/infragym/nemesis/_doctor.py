"""Capability probe: which faults this machine can inflict, and why not.

Each probe does the real thing on a throw-away one-host cluster (load a switch table with
an nft ``numgen`` rule, shape a port with tbf, proxy a link, mount a tmpfs, freeze a
cgroup...) rather than guessing from version numbers. Results are cached per process. A
fault whose capability is missing is an error when asked for, never silently skipped.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .._errors import CapabilityError, InfraGymError
from ..sandbox import Cluster, cgroup_v1_available
from ..sandbox.lowlevel import FAKETIME_LIB, Chain, run
from ._kinds import KINDS
from ._proxy_probe import proxy_available


@dataclass(frozen=True)
class Capability:
    name: str
    supported: bool
    reason: str


def _probe_in_cluster(c: Cluster) -> list[Capability]:
    h = c.hosts[0]
    caps: list[Capability] = []

    def attempt(name: str, ok_reason: str, fn: Callable[[], object]) -> None:
        try:
            fn()
            caps.append(Capability(name, True, ok_reason))
        except InfraGymError as exc:
            caps.append(Capability(name, False, str(exc)))

    # every rule names the probe host's port: the bridge family sees every bridge
    port = f'iifname "{h.port.link}"'
    attempt(
        "nftables",
        "bridge-family nft tables load on the cluster's switch (partitions)",
        lambda: c.switch.load(
            "probe", [Chain("forward", 0, (f"{port} ether daddr {h.mac} drop",))]
        ),
    )
    attempt(
        "nft-numgen",
        "nft `numgen random` rules load on the switch (random packet loss)",
        lambda: c.switch.load(
            "probe", [Chain("forward", 0, (f"{port} numgen random mod 100 < 1 drop",))]
        ),
    )
    attempt(
        "tbf",
        "a port's sending is shaped by tbf on an ifb device (bandwidth limits)",
        lambda: c.switch.limit_sending(h.port, 1_000_000),
    )
    c.switch.delete("probe")
    c.switch.limit_sending(h.port, None)
    netem = run(
        ["tc", "-n", h.netns, "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", "10ms"],
        check=False,
    )
    caps.append(
        Capability(
            "netem",
            netem.returncode == 0,
            "tc netem loads"
            if netem.returncode == 0
            else "tc netem is not in this kernel; the latency fault uses a TCP proxy instead",
        )
    )

    def freeze() -> None:
        p = h.spawn("probe", ["sleep", "30"], service=False)
        h.freeze()
        h.thaw()
        p.stop(1.0)

    attempt("freezer", "the cgroup freezer pauses and resumes a host", freeze)

    def no_userns() -> None:
        r = h.run(["unshare", "-U", "true"], timeout=10)
        if r.returncode == 0:
            raise CapabilityError("a host process created a user namespace: no seccomp filter")

    attempt("no-userns", "sandboxed code cannot create user namespaces (seccomp)", no_userns)
    caps.append(Capability("tmpfs", True, "each host's data directory is a sized tmpfs"))
    ok, why = proxy_available(c)
    caps.append(Capability("tcp-proxy", ok, why))
    return caps


def _probe_net_admin() -> Capability:
    """A host granted network capabilities holds them, over its own namespace only."""
    try:
        with Cluster(1, net_admin=True) as c:
            h = c.hosts[0]
            r = h.run(["ip", "addr", "add", f"{c.free_addresses()[0]}/32", "dev", "eth0"])
            if r.returncode != 0:
                return Capability("net-admin", False, r.stderr.decode(errors="replace"))
    except InfraGymError as exc:
        return Capability("net-admin", False, f"cannot build a host with net_admin: {exc}")
    return Capability(
        "net-admin",
        True,
        "hosts built with net_admin hold CAP_NET_ADMIN and CAP_NET_RAW in a user namespace "
        "of their own",
    )


@functools.cache
def probe() -> tuple[Capability, ...]:
    """Probe this machine once; the result is cached for the life of the process."""
    caps: list[Capability] = []
    root = os.geteuid() == 0
    caps.append(
        Capability(
            "root",
            root,
            "running as root" if root else "not root: clusters need root (run with sudo)",
        )
    )
    for tool, pkg in (
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("bwrap", "bubblewrap"),
        ("tc", "iproute2"),
    ):
        path = shutil.which(tool)
        caps.append(
            Capability(
                f"tool:{tool}",
                path is not None,
                path or f"{tool} missing: apt-get install -y {pkg}",
            )
        )
    ok, why = cgroup_v1_available()
    caps.append(Capability("cgroups", ok, why))
    ft = os.path.exists(FAKETIME_LIB)
    caps.append(
        Capability(
            "libfaketime",
            ft,
            "libfaketime is installed; clock skew applies to clusters built with faketime=True"
            if ft
            else "libfaketime missing: apt-get install -y faketime",
        )
    )
    cluster_ok = root and ok and all(c.supported for c in caps if c.name.startswith("tool:"))
    if cluster_ok:
        try:
            with Cluster(1) as c:
                caps.append(Capability("cluster", True, "a one-host cluster builds and tears down"))
                caps += _probe_in_cluster(c)
            caps.append(_probe_net_admin())
        except InfraGymError as exc:
            caps.append(Capability("cluster", False, f"cannot build a cluster: {exc}"))
    else:
        caps.append(
            Capability("cluster", False, "clusters need root, cgroups v1 and the tools above")
        )
    if not any(cap.name == "tcp-proxy" for cap in caps):
        caps.append(Capability("tcp-proxy", False, "needs a working cluster"))
    return tuple(caps)


def fault_support() -> dict[str, Capability]:
    """For every fault kind: supported or not, and why."""
    caps = {c.name: c for c in probe()}
    out = {}
    for kind, k in KINDS.items():
        needs = k.needs
        missing = [caps.get(n, Capability(n, False, f"{n} was not probed")) for n in needs]
        missing = [c for c in missing if not c.supported]
        if missing:
            out[kind] = Capability(kind, False, "; ".join(f"{c.name}: {c.reason}" for c in missing))
        else:
            out[kind] = Capability(kind, True, ", ".join(needs))
    return out


def require_supported(kinds: Iterable[str]) -> None:
    """Raise CapabilityError naming every requested fault kind this machine cannot do."""
    support = fault_support()
    bad = []
    for k in kinds:
        cap = support.get(k)
        if cap is None:
            bad.append(f"{k}: unknown fault kind (known: {', '.join(KINDS)})")
        elif not cap.supported:
            bad.append(f"{k}: {cap.reason}")
    if bad:
        raise CapabilityError(
            "unsupported faults on this machine: " + "; ".join(bad) + " (see `infragym doctor`)"
        )
