"""The cluster's bridge seen from the machine's namespace: its ports, the guard on them,
and the nft tables and shapers that faults put there.

Everything here lives in the root network namespace, out of reach of every host whatever
capabilities it holds in its own namespace: a fault enforced here (a partition, packet
loss, a bandwidth limit, the diversion of a slowed link to the link proxy) cannot be
flushed from inside a host. Rules match bridge ports (the root-side veth of each
endpoint) and MAC addresses the platform assigns, never addresses a host could change;
the guard makes the MACs and IPv4 addresses trustworthy:

- a frame from an endpoint's port must carry its own MAC, be IPv4 or ARP, claim no
  address of another endpoint or the platform (as IP source or ARP sender) and no address
  outside the subnet, and go to broadcast, multicast or the MAC of another endpoint
  (never the link proxy's, the bridge's or an unknown one: no flooding on demand);
- a unicast frame reaches a port only if it is addressed to that endpoint's MAC, so a raw
  socket sees its own link's traffic, broadcasts and multicast, and nothing else;
- nothing on the bridge reaches the machine's own stack (the bridge's input hook drops
  every frame of its ports).

An address of the subnet that no endpoint holds is free: a host may claim it (a virtual
IP held by VRRP, announced by gratuitous ARP). Each table is named after the run id, so
``infragym cleanup`` finds those a killed run left.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import ResourceError
from . import _state
from ._sys import finish, ip_batch, run, start

__all__ = ["Chain", "Port", "Switch", "delete_run_tables", "run_tables"]

GUARD = "guard"
_FAMILY = "bridge"
_UNICAST = "ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00"


@dataclass(frozen=True)
class Port:
    """Where an endpoint (a host, the client, the link proxy) meets the bridge."""

    name: str
    netns: str
    address: str
    mac: str
    link: str
    """The root-side veth: the bridge port, which rules in the root namespace match."""
    index: int


@dataclass(frozen=True)
class Chain:
    """A base chain of a switch table: ``rules`` on ``hook`` at ``priority``."""

    hook: str
    priority: int
    rules: tuple[str, ...]

    def render(self) -> str:
        """The chain, named after its hook (a table has one chain per hook)."""
        body = "".join(f"    {r}\n" for r in self.rules)
        return (
            f"  chain {self.hook} {{\n"
            f"    type filter hook {self.hook} priority {self.priority}; policy accept;\n"
            f"{body}  }}\n"
        )


def _set(items: Sequence[str], quote: bool = False) -> str:
    values = [f'"{i}"' if quote else i for i in items]
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def guard_chains(guarded: Sequence[Port], platform: Sequence[Port], subnet: str) -> str:
    """The guard's chains (see the module docstring) for the ``guarded`` endpoints;
    ``platform`` are endpoints whose addresses nobody else may claim and whose frames are
    not filtered (the link proxy)."""
    everyone = [*guarded, *platform]
    prerouting, forward = [], []
    per_port: list[tuple[str, tuple[str, ...]]] = []
    for p in guarded:
        others = [o for o in everyone if o.name != p.name]
        addresses = _set([o.address for o in others])
        peers = _set([o.mac for o in guarded if o.name != p.name] or ["ff:ff:ff:ff:ff:ff"])
        prerouting.append(f'"{p.link}" : jump from_{p.name}')
        forward.append(f'"{p.link}" : jump to_{p.name}')
        per_port.append(
            (
                f"from_{p.name}",
                (
                    f"ether saddr != {p.mac} drop",
                    "ether type != { ip, arp } drop",
                    f"{_UNICAST} ether daddr != {peers} drop",
                    f"arp saddr ether != {p.mac} drop",
                    f"arp saddr ip != {{ 0.0.0.0, {subnet} }} drop",
                    f"arp saddr ip {addresses} drop",
                    f"ip saddr != {subnet} drop",
                    f"ip saddr {addresses} drop",
                ),
            )
        )
        per_port.append((f"to_{p.name}", (f"{_UNICAST} ether daddr != {p.mac} drop",)))
    ports = _set([p.link for p in everyone], quote=True)
    base = [
        Chain("prerouting", -300, (f"iifname vmap {{ {', '.join(prerouting)} }}",)),
        Chain("forward", -300, (f"oifname vmap {{ {', '.join(forward)} }}",)),
        Chain("input", -300, (f"iifname {ports} drop",)),
    ]
    regular = "".join(
        f"  chain {name} {{\n" + "".join(f"    {r}\n" for r in rules) + "  }\n"
        for name, rules in per_port
    )
    return "".join(c.render() for c in base) + regular


class Switch:
    """The root-namespace side of one cluster's bridge: named nft tables and shapers."""

    def __init__(self, run_id: str, bridge: str) -> None:
        self.run_id = run_id
        self.bridge = bridge

    def table(self, name: str) -> str:
        """The name of this run's switch table ``name``."""
        return _state.table_name(self.run_id, name)

    def load(self, name: str, chains: Sequence[Chain]) -> None:
        """Create table ``name`` holding ``chains``, replacing the rules of one of that
        name, atomically."""
        self.load_text(name, "".join(c.render() for c in chains))

    def load_text(self, name: str, body: str) -> None:
        # flushed rather than deleted: deleting a table with base chains waits for an
        # RCU grace period (10-20 ms here), flushing its rules does not
        table = self.table(name)
        nft_root(
            f"add table {_FAMILY} {table}\nflush table {_FAMILY} {table}\n"
            f"table {_FAMILY} {table} {{\n{body}}}\n"
        )

    def delete(self, name: str) -> None:
        """Remove table ``name``; nothing if it does not exist."""
        _delete_table(self.table(name))

    def guard(self, guarded: Sequence[Port], platform: Sequence[Port], subnet: str) -> None:
        self.load_text(GUARD, guard_chains(guarded, platform, subnet))

    def limit_sending(self, port: Port, rate_bps: int | None) -> None:
        """Shape what ``port``'s endpoint sends to ``rate_bps`` (a tbf qdisc), or remove the
        shaping (None).

        What an endpoint sends enters its port, and a qdisc shapes only what leaves a
        device: the port's ingress is redirected to an ifb device whose egress holds
        the tbf, and the traffic continues into the bridge from there.
        """
        ifb = _state.ifb_name(self.run_id, port.index)
        if rate_bps is None:
            run(["tc", "qdisc", "del", "dev", port.link, "ingress"], check=False)
            ip_batch([f"link del {ifb}"], check=False)
            return
        # burst of ~10 ms of traffic (at least a few MTUs) keeps the shaping smooth
        burst = max(rate_bps // 8 // 100, 4 * 1514)
        if run(["ip", "link", "show", ifb], check=False).returncode != 0:
            ip_batch([f"link add {ifb} type ifb", f"link set {ifb} up"])
            run(["tc", "qdisc", "replace", "dev", port.link, "handle", "ffff:", "ingress"])
            run(
                [
                    "tc", "filter", "add", "dev", port.link, "parent", "ffff:", "protocol",
                    "all", "u32", "match", "u32", "0", "0",
                    "action", "mirred", "egress", "redirect", "dev", ifb,
                ]
            )  # fmt: skip
        run(
            [
                "tc", "qdisc", "replace", "dev", ifb, "root", "tbf", "rate", f"{rate_bps}bit",
                "burst", str(burst), "latency", "200ms",
            ]
        )  # fmt: skip

    def sending_limit(self, port: Port) -> str | None:
        """The rate ``port``'s endpoint may send at, as tc shows it ("8Mbit"), or None."""
        ifb = _state.ifb_name(self.run_id, port.index)
        out = run(["tc", "qdisc", "show", "dev", ifb, "root"], check=False).stdout
        words = out.split()
        return words[words.index("rate") + 1] if "tbf" in words and "rate" in words else None

    def close(self) -> subprocess.Popen[str] | None:
        """Start removing every table of this run (in one transaction: one RCU grace
        period); the caller waits for the returned process, after other work."""
        tables = run_tables(self.run_id)
        if not tables:
            return None
        return _delete_tables(tables)


def nft_root(script: str) -> None:
    """Load an nft script in the machine's namespace."""
    run(["nft", "-f", "-"], input=script)


def _delete_table(table: str) -> None:
    done = run(["nft", "delete", "table", _FAMILY, table], check=False)
    if done.returncode != 0 and "No such file or directory" not in done.stderr:
        raise ResourceError(f"cannot delete nft table {table}: {done.stderr.strip()}")


def run_tables(run_id: str | None = None) -> list[str]:
    """The switch tables of ``run_id`` (of every run if None) in the machine's namespace."""
    out = run(["nft", "list", "tables", _FAMILY], check=False).stdout
    names = [line.split()[2] for line in out.splitlines() if len(line.split()) == 3]
    return [
        n
        for n in names
        if (rid := _state.run_id_of_table(n)) is not None and (run_id is None or rid == run_id)
    ]


def _delete_tables(tables: Sequence[str]) -> subprocess.Popen[str]:
    return start(["nft", "-f", "-"], "".join(f"delete table {_FAMILY} {t}\n" for t in tables))


def wait_deleted(proc: subprocess.Popen[str] | None, run_id: str) -> None:
    """Wait for :meth:`Switch.close`'s process; if it failed (a table went meanwhile),
    delete what is left of the run's tables one by one."""
    if proc is None:
        return
    err = finish(proc)
    if err is not None:
        for t in run_tables(run_id):
            _delete_table(t)
        if run_tables(run_id):
            raise ResourceError(f"cannot delete the nft tables of run {run_id}: {err}")


def delete_run_tables(run_id: str) -> list[str]:
    """Delete every switch table of ``run_id``; the names of the tables."""
    tables = run_tables(run_id)
    if tables:
        wait_deleted(_delete_tables(tables), run_id)
    return tables
