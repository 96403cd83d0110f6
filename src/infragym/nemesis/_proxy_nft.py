"""The nft rules of the link proxy, and how it runs them.

Two places hold them: the switch, in the machine's namespace, diverts a slowed link's TCP
frames to the link proxy's namespace (:func:`diversion_rules`); there, the proxy's table
redirects each new connection to the link's listener and delivers the answers to its
transparent upstream sockets (:func:`proxy_table`, :func:`redirect_rule`).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

from .._errors import ResourceError
from ..sandbox.lowlevel import LINK_PROXY_LOCAL_MARK, LINK_PROXY_PORTS, Port, netns_path

_NFT_TIMEOUT_S = 10.0
DIVERT_PRIORITY = -100
"""After the guard (-300) and partitions (-200): a partition reads the destination MAC the
diversion rewrites, and a cut link must stay cut when it is also slowed."""


def proxy_table(table: str) -> str:
    """nft commands adding ``table`` in the link proxy's namespace: a ``deliver`` chain
    marking packets that belong to a transparent socket of the proxy (routed locally by
    the namespace's policy rule), and an empty ``listeners`` nat chain for the links.

    The ``ct`` rule keeps the namespace's conntrack hooks registered for the table's life:
    when the last rule using conntrack goes (a link's redirect, removed by a heal), the
    kernel stops tracking, the NAT of live proxied connections is no longer undone and
    their next packets are answered with resets, breaking what a heal promises to keep."""
    return (
        f"add table ip {table}\n"
        f"add chain ip {table} deliver "
        "{ type filter hook prerouting priority mangle; policy accept; }\n"
        f"add rule ip {table} deliver ct state new counter\n"
        f"add rule ip {table} deliver socket transparent 1 "
        f"meta mark set {LINK_PROXY_LOCAL_MARK:#x} accept\n"
        f"add chain ip {table} listeners "
        "{ type nat hook prerouting priority dstnat; policy accept; }\n"
    )


def redirect_rule(table: str, src: Port, dst_ip: str, port: int) -> str:
    """nft command (no newline) sending each new TCP connection from ``src`` (known by its
    MAC, which the switch's guard keeps honest) to ``dst_ip`` to the local ``port``."""
    return (
        f'add rule ip {table} listeners iifname "eth0" ether saddr {src.mac} '
        f"ip daddr {dst_ip} tcp flags & (fin|syn|rst|ack) == syn redirect to :{port}"
    )


def diversion_rules(src: Port, dst: Port, proxy: Port) -> tuple[str, ...]:
    """Switch rules taking ``src``'s TCP frames for ``dst`` to the proxy, and ``dst``'s
    answers to the proxy's upstream sockets (their source ports are the proxy
    namespace's, above every host's ephemeral range) back to it.

    A frame is diverted only if it was going to the MAC of the endpoint that holds its
    destination address: a frame sent to a third host's MAC stays there (else, while a
    partition cuts ``src`` from ``dst``, it would reach ``dst`` through the proxy)."""
    low, high = LINK_PROXY_PORTS
    return (
        f'iifname "{src.link}" ether daddr {dst.mac} ip daddr {dst.address} '
        f"meta l4proto tcp ether daddr set {proxy.mac}",
        f'iifname != "{proxy.link}" ether daddr {src.mac} ip saddr {dst.address} '
        f"ip daddr {src.address} tcp dport {low}-{high} ether daddr set {proxy.mac}",
    )


async def nft_in(netns: str | None, script: str, *, echo: bool = False) -> str:
    """Run the nft ``script`` in ``netns`` (the machine's namespace if None); its output
    (with ``echo``: what was added, with rule handles). A failure or a timeout is a
    ResourceError."""
    argv = ["nft"] if netns is None else ["nsenter", f"--net={netns_path(netns)}", "nft"]
    if echo:
        argv += ["--echo", "--handle"]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        "-f",
        "-",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(script.encode()), _NFT_TIMEOUT_S)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        where = f"netns {netns}" if netns else "the machine's namespace"
        raise ResourceError(
            f"nft in {where} failed ({proc.returncode}): "
            f"{err.decode(errors='replace').strip()}; script was: {script.strip()!r}"
        )
    return out.decode(errors="replace")
