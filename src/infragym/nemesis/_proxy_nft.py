"""The nft commands of the link proxy, and how it runs them in a network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

from .._errors import ResourceError
from ..sandbox.lowlevel import netns_path

_NFT_TIMEOUT_S = 10.0


def nat_table(table: str) -> str:
    """nft commands adding ``table`` with its chain ``out`` on the nat output hook."""
    return (
        f"add table ip {table}\n"
        f"add chain ip {table} out "
        "{ type nat hook output priority -100; policy accept; }\n"
    )


def redirect_rule(table: str, mark: int, dst_ip: str, port: int) -> str:
    """nft command (no newline) sending new TCP connections to ``dst_ip`` to local ``port``,
    except those of sockets marked ``mark``."""
    return (
        f"add rule ip {table} out meta mark != {mark:#x} "
        f"ip daddr {dst_ip} meta l4proto tcp redirect to :{port}"
    )


async def nft_in(netns: str, script: str, *, echo: bool = False) -> str:
    """Run the nft ``script`` in ``netns``; its output (with ``echo``: what was added,
    with rule handles). A failure or a timeout is a ResourceError."""
    argv = ["nsenter", f"--net={netns_path(netns)}", "nft"]
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
        raise ResourceError(
            f"nft in netns {netns} failed ({proc.returncode}): "
            f"{err.decode(errors='replace').strip()}; script was: {script.strip()!r}"
        )
    return out.decode(errors="replace")
