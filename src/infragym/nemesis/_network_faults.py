"""Network faults done in the kernel: Partition, PacketLoss (nft) and Bandwidth (tbf).

Partition and PacketLoss each own an nft table named after their label, so several of them
compose and each heals independently. A host has one root qdisc, so Bandwidth limits of a
host share its record (:mod:`._host_state`). Latency, done by a userspace proxy, is in
:mod:`._latency`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._errors import ConfigError
from ..sandbox import Cluster, Host
from ..sandbox.lowlevel import nft, run
from ._fault import Fault
from ._host_state import host_faults

MAX_RATE_BPS = 10**12


def _check_hosts(cluster: Cluster, names: Iterable[str]) -> list[Host]:
    return [cluster.host(n) for n in names]


def _table(label: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in label)
    return f"infragym_{safe}"[:60]


def _filter_table(table: str, rules: Mapping[str, str]) -> str:
    """An nft script making ``table`` with one chain per hook of ``rules`` (``input``,
    ``output``), run before the default filters and holding that hook's rule."""
    chains = "".join(
        f"  chain {hook} {{ type filter hook {hook} priority -10; policy accept;\n"
        f"    {rule}\n"
        "  }\n"
        for hook, rule in rules.items()
    )
    return f"\ntable inet {table} {{\n{chains}}}"


def _drop_table(netns: str, table: str) -> None:
    run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", table], check=False)


class Partition(Fault):
    """Cut links between hosts with nft drop rules in each host's namespace.

    ``blocked`` maps each host to the hosts it must not exchange packets with; it is made
    symmetric. Constructors cover the usual topologies: ``isolate``, ``groups`` (e.g.
    majority / minority) and ``bridge``.
    """

    kind = "partition"

    def __init__(self, blocked: Mapping[str, Iterable[str]], label: str | None = None) -> None:
        super().__init__(label)
        sym: dict[str, set[str]] = {}
        for a, bs in blocked.items():
            for b in bs:
                if a == b:
                    raise ConfigError(f"a partition cannot cut host {a!r} from itself")
                sym.setdefault(a, set()).add(b)
                sym.setdefault(b, set()).add(a)
        if not sym:
            raise ConfigError("a partition must cut at least one link")
        self.blocked = {k: frozenset(v) for k, v in sorted(sym.items())}

    @classmethod
    def groups(cls, groups: Sequence[Sequence[str]], label: str | None = None) -> Partition:
        """Hosts talk only within their group: ``[["n1", "n2"], ["n3"]]``."""
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
        return cls(blocked, label)

    @classmethod
    def isolate(cls, host: str, hosts: Sequence[str], label: str | None = None) -> Partition:
        if host not in hosts:
            raise ConfigError(f"cannot isolate {host!r}: not one of {list(hosts)}")
        return cls.groups([[host], [h for h in hosts if h != host]], label)

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

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        table = _table(self.label)
        for name, peers in self.blocked.items():
            host = cluster.host(name)
            addrs = ", ".join(cluster.host(p).address for p in sorted(peers))
            rules = {
                "input": f"ip saddr {{ {addrs} }} drop",
                "output": f"ip daddr {{ {addrs} }} drop",
            }
            nft(host.netns, _filter_table(table, rules))
        return {"blocked": {k: sorted(v) for k, v in self.blocked.items()}}

    def heal(self, cluster: Cluster) -> None:
        table = _table(self.label)
        for name in self.blocked:
            _drop_table(cluster.host(name).netns, table)


class PacketLoss(Fault):
    """Drop a random fraction of the packets a host receives (nft ``numgen random``)."""

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
        table = _table(self.label)
        per_10k = round(self.probability * 10_000)
        rules = {"input": f'iifname "eth0" numgen random mod 10000 < {per_10k} drop'}
        for host in _check_hosts(cluster, self.hosts):
            nft(host.netns, _filter_table(table, rules))
        return {"probability": self.probability}

    def heal(self, cluster: Cluster) -> None:
        for host in _check_hosts(cluster, self.hosts):
            _drop_table(host.netns, _table(self.label))


class Bandwidth(Fault):
    """Limit what a host can send to ``rate_bps`` bits per second (a tbf qdisc on eth0).

    A host has one root qdisc, so limits on one host overlap: the lowest active rate
    applies, and the qdisc is removed when the last limit heals.
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
                _set_rate(host, effective[host.name])
        return {"rate_bps": self.rate_bps, "effective_bps": effective}

    def heal(self, cluster: Cluster) -> None:
        for host in _check_hosts(cluster, self.hosts):
            state = host_faults(cluster, host.name)
            with state.lock:
                if self not in state.bandwidth:
                    continue
                rest = [r for f, r in state.bandwidth.items() if f is not self]
                _set_rate(host, min(rest) if rest else None)
                del state.bandwidth[self]


def _set_rate(host: Host, rate_bps: int | None) -> None:
    """Shape what ``host`` sends to ``rate_bps``, or remove the shaping (``None``)."""
    if rate_bps is None:
        run(["tc", "-n", host.netns, "qdisc", "del", "dev", "eth0", "root"], check=False)
        return
    # burst of ~10 ms of traffic (at least a few MTUs) keeps the shaping smooth
    burst = max(rate_bps // 8 // 100, 4 * 1514)
    run(
        [
            "tc",
            "-n",
            host.netns,
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            f"{rate_bps}bit",
            "burst",
            str(burst),
            "latency",
            "200ms",
        ]
    )
