"""Network faults done in the kernel: Partition, PacketLoss (nft) and Bandwidth (tbf).

All of them act on the cluster's switch, in the machine's namespace (:mod:`infragym.sandbox`
``Cluster.switch``), where no host can undo them whatever capabilities it holds in its
own namespace: rules match the bridge port and MAC of each host, which the switch's guard
keeps honest, never addresses a host could change. Partition and PacketLoss each own a
switch table named after their label, so several of them compose and each heals
independently. Bandwidth shapes what a host sends at its port; a port has one shaper, so
Bandwidth limits of a host share its record (:mod:`._host_state`). Latency, done by a
userspace proxy the switch diverts slowed links to, is in :mod:`._latency`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._errors import ConfigError
from ..sandbox import Cluster, Host
from ..sandbox.lowlevel import LINK_PROXY, Chain
from ._fault import Fault
from ._host_state import host_faults
from ._target import FaultTarget, Pick, as_target

MAX_RATE_BPS = 10**12


def _check_hosts(cluster: Cluster, names: Iterable[str]) -> list[Host]:
    return [cluster.host(n) for n in names]


def _table(label: str) -> str:
    return f"fault_{label}"


# Partitions run before the link proxy's diversion (priority -100), which rewrites the
# destination MAC they read, and after the guard (-300), which makes MACs trustworthy.
_PARTITION_PRIORITY = -200
_NOT_ARP = "ether type != arp"


class Partition(Fault):
    """Cut links between hosts: the switch drops every frame between them but ARP (as an
    IP-level drop inside each host did before it moved to the switch).

    ``blocked`` maps each host to the hosts it must not exchange packets with; it is made
    symmetric. Constructors cover the usual topologies: ``isolate``, ``groups`` (e.g.
    majority / minority) and ``bridge``. The client namespace is never cut.
    """

    kind = "partition"

    def __init__(self, blocked: Mapping[str, Iterable[str]], label: str | None = None) -> None:
        super().__init__(label)
        self.blocked = _symmetric(blocked)
        self._isolating: tuple[FaultTarget, tuple[str, ...]] | None = None

    @classmethod
    def groups(cls, groups: Sequence[Sequence[str]], label: str | None = None) -> Partition:
        """Hosts talk only within their group: ``[["n1", "n2"], ["n3"]]``."""
        return cls(_groups(groups), label)

    @classmethod
    def isolate(
        cls, host: str | FaultTarget | Pick, hosts: Sequence[str], label: str | None = None
    ) -> Partition:
        """Cut ``host`` from the other ``hosts``. ``host`` may be a fire-time
        :class:`~._target.FaultTarget`: each apply isolates the host it names then (none: the
        partition is skipped)."""
        target = as_target(host)
        if target is None:
            if host not in hosts:
                raise ConfigError(f"cannot isolate {host!r}: not one of {list(hosts)}")
            return cls.groups([[str(host)], [h for h in hosts if h != host]], label)
        if len(hosts) < 2:
            raise ConfigError(f"isolating a host needs a second one, not {list(hosts)}")
        p = cls({hosts[0]: hosts[1:]}, label)  # replaced by the target's choice at apply
        p._isolating = (target, tuple(hosts))
        p.blocked = {}
        return p

    @classmethod
    def bridge(cls, hosts: Sequence[str], label: str | None = None) -> Partition:
        """Two halves that cannot talk, and one host in the middle that talks to both."""
        if len(hosts) < 3:
            raise ConfigError("a bridge partition needs at least 3 hosts")
        mid = len(hosts) // 2
        left, middle, right = hosts[:mid], hosts[mid], hosts[mid + 1 :]
        del middle
        return cls({h: set(right) for h in left}, label)

    def targets(self) -> tuple[str, ...]:
        return tuple(self.blocked)

    def describe(self) -> str:
        if not self.blocked and self._isolating is not None:
            return f"{self.kind}(isolate {self._isolating[0].name})"
        return super().describe()

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        if self._isolating is not None:
            target, hosts = self._isolating
            host, detail = target.choose(cluster)
            if host is None:
                self.blocked = {}
                return detail
            self.blocked = _symmetric(_groups([[host], [h for h in hosts if h != host]]))
            return {**detail, **self._cut(cluster)}
        return self._cut(cluster)

    def _cut(self, cluster: Cluster) -> dict[str, Any]:
        proxy = cluster.port(LINK_PROXY).link
        pre, fwd = [], []
        for name, peers in self.blocked.items():
            host = cluster.host(name)
            others = [cluster.host(p) for p in sorted(peers)]
            macs = _set([o.mac for o in others])
            # unicast, before the link proxy's diversion rewrites its destination MAC
            pre.append(f'iifname "{host.port.link}" ether daddr {macs} {_NOT_ARP} drop')
            # what the link proxy relays on behalf of a peer (connections it held before)
            pre.append(
                f'iifname "{proxy}" ip saddr {_set([o.address for o in others])} '
                f"ether daddr {host.mac} {_NOT_ARP} drop"
            )
            # broadcast and multicast, flooded to every port
            links = _set([f'"{o.port.link}"' for o in others])
            fwd.append(f'iifname "{host.port.link}" oifname {links} {_NOT_ARP} drop')
        cluster.switch.load(
            _table(self.label),
            [Chain("prerouting", _PARTITION_PRIORITY, tuple(pre)), Chain("forward", 0, tuple(fwd))],
        )
        return {"blocked": {k: sorted(v) for k, v in self.blocked.items()}}

    def heal(self, cluster: Cluster) -> None:
        cluster.switch.delete(_table(self.label))


def _symmetric(blocked: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    sym: dict[str, set[str]] = {}
    for a, bs in blocked.items():
        for b in bs:
            if a == b:
                raise ConfigError(f"a partition cannot cut host {a!r} from itself")
            sym.setdefault(a, set()).add(b)
            sym.setdefault(b, set()).add(a)
    if not sym:
        raise ConfigError("a partition must cut at least one link")
    return {k: frozenset(v) for k, v in sorted(sym.items())}


def _groups(groups: Sequence[Sequence[str]]) -> dict[str, set[str]]:
    flat = [h for g in groups for h in g]
    if len(groups) < 2 or any(not g for g in groups):
        raise ConfigError("a partition needs at least two non-empty groups")
    if len(set(flat)) != len(flat):
        raise ConfigError(f"a host appears in two groups of the partition {groups}")
    blocked: dict[str, set[str]] = {}
    for i, g in enumerate(groups):
        others = [h for j, o in enumerate(groups) if j != i for h in o]
        for h in g:
            blocked[h] = set(others)
    return blocked


def _set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


class PacketLoss(Fault):
    """Drop a random fraction of the IP packets a host receives (nft ``numgen random`` on
    the frames the switch sends out of its port)."""

    kind = "loss"

    def __init__(self, hosts: Sequence[str], probability: float, label: str | None = None) -> None:
        super().__init__(label)
        probability = self._number("probability", probability)
        if not 0.0 < probability <= 1.0:
            raise self._bad(f"loss probability must be in (0, 1], not {probability}")
        self.hosts = self._hosts(hosts)
        self.probability = probability

    def targets(self) -> tuple[str, ...]:
        return self.hosts

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        per_10k = round(self.probability * 10_000)
        links = _set([f'"{h.port.link}"' for h in _check_hosts(cluster, self.hosts)])
        rule = f"oifname {links} ether type {{ ip, ip6 }} numgen random mod 10000 < {per_10k} drop"
        cluster.switch.load(_table(self.label), [Chain("forward", 0, (rule,))])
        return {"probability": self.probability}

    def heal(self, cluster: Cluster) -> None:
        cluster.switch.delete(_table(self.label))


class Bandwidth(Fault):
    """Limit what a host can send to ``rate_bps`` bits per second (a tbf qdisc shaping
    what enters the switch from its port).

    A port has one shaper, so limits on one host overlap: the lowest active rate applies,
    and the shaper is removed when the last limit heals.
    """

    kind = "bandwidth"

    def __init__(self, hosts: Sequence[str], rate_bps: int, label: str | None = None) -> None:
        super().__init__(label)
        rate = self._number("rate_bps", rate_bps)
        if not 8_000 <= rate <= MAX_RATE_BPS:
            raise self._bad(
                f"rate_bps must be between 8000 and {MAX_RATE_BPS} bit/s, not {rate_bps}"
            )
        self.hosts = self._hosts(hosts)
        self.rate_bps = int(rate)

    def targets(self) -> tuple[str, ...]:
        return self.hosts

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        effective = {}
        for host in _check_hosts(cluster, self.hosts):
            state = host_faults(cluster, host.name)
            with state.lock:
                state.bandwidth[self] = self.rate_bps
                effective[host.name] = min(state.bandwidth.values())
                _set_rate(cluster, host, effective[host.name])
        return {"rate_bps": self.rate_bps, "effective_bps": effective}

    def heal(self, cluster: Cluster) -> None:
        for host in _check_hosts(cluster, self.hosts):
            state = host_faults(cluster, host.name)
            with state.lock:
                if self not in state.bandwidth:
                    continue
                rest = [r for f, r in state.bandwidth.items() if f is not self]
                _set_rate(cluster, host, min(rest) if rest else None)
                del state.bandwidth[self]


def _set_rate(cluster: Cluster, host: Host, rate_bps: int | None) -> None:
    """Shape what ``host`` sends to ``rate_bps``, or remove the shaping (``None``)."""
    cluster.switch.limit_sending(host.port, rate_bps)
