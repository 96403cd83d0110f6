"""Whether this machine can run the link proxy, checked for real; for ``infragym doctor``."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess

from .._errors import InfraGymError
from ..sandbox.lowlevel import netns_path, socket_in_netns
from ._proxy import PROXY_MARK, TABLE_PREFIX
from ._proxy_nft import nat_table, redirect_rule
from ._relay import original_dst


def proxy_available() -> tuple[bool, str]:
    """Whether this machine can run :class:`LinkProxy`, and why not; for ``infragym doctor``.

    Builds a throwaway namespace and checks, for real, that an nft redirect reaches a local
    listener, that ``SO_ORIGINAL_DST`` gives the intended destination, and that a socket
    carrying the proxy's mark is not redirected.
    """
    if os.geteuid() != 0:
        return False, "needs root (nft rules and setns)"
    missing = [tool for tool in ("ip", "nft", "nsenter") if shutil.which(tool) is None]
    if missing:
        return False, f"missing tools: {', '.join(missing)}"
    name = f"igprobe-{secrets.token_hex(4)}"
    made = False
    socks: list[socket.socket] = []
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
        made = True
        subprocess.run(
            ["ip", "-n", name, "-batch", "-"],
            input=b"link set lo up\naddr add 198.18.255.1/24 dev lo\n",
            check=True,
            capture_output=True,
            timeout=10,
        )
        listener = socket_in_netns(name)
        socks.append(listener)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(2.0)
        port = listener.getsockname()[1]
        table = f"{TABLE_PREFIX}_probe"
        rules = nat_table(table) + redirect_rule(table, PROXY_MARK, "198.18.255.2", port) + "\n"
        done = subprocess.run(
            ["nsenter", f"--net={netns_path(name)}", "nft", "-f", "-"],
            input=rules.encode(),
            check=False,
            capture_output=True,
            timeout=10,
        )
        if done.returncode != 0:
            return False, f"nft nat redirect unavailable: {done.stderr.decode().strip()}"
        client = socket_in_netns(name)
        socks.append(client)
        client.settimeout(2.0)
        client.connect(("198.18.255.2", 9))
        accepted, _ = listener.accept()
        socks.append(accepted)
        dst = original_dst(accepted)
        if dst != ("198.18.255.2", 9):
            return False, f"SO_ORIGINAL_DST gave {dst}, expected ('198.18.255.2', 9)"
        marked = socket_in_netns(name)
        socks.append(marked)
        marked.settimeout(2.0)
        marked.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, PROXY_MARK)
        try:
            marked.connect(("198.18.255.2", 9))
        except ConnectionRefusedError:
            pass
        else:
            return False, "a socket carrying the proxy mark was redirected too"
        return True, "nft nat redirect, SO_ORIGINAL_DST and SO_MARK work"
    except (OSError, subprocess.SubprocessError, InfraGymError) as exc:
        return False, f"probe failed: {exc}"
    finally:
        for sock in socks:
            sock.close()
        if made:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["ip", "netns", "del", name], check=False, capture_output=True, timeout=10
                )
