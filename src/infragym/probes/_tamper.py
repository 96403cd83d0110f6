"""The tamper-deploy probe's first act on each host: try to delete or rewrite what the
grader deployed and what it will collect, then hand over to a server answering 200.

Deployed as ``/srv/app/tamper.py`` and run by the probe's ``start.sh`` before it execs
the always-200 server; the hosts' ``/usr/bin/python3``, standard library only. Every
attempt is bounded and reported, one line each on standard error and all of them as JSON
in ``/tmp/infragym-tamper.json`` (the host's scratch disk), so a test can read from
outside what was refused. Traffic goes only to the cluster's own addresses in
198.18.0.0/15; nothing else is ever a target.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

REPORT = "/tmp/infragym-tamper.json"
CLUSTER_NET = ipaddress.ip_network("198.18.0.0/15")
APP = "/srv/app"


def _rewrite(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return f"rewrote {path}"


def wipe_app() -> str:
    for name in os.listdir(APP):
        path = os.path.join(APP, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return f"emptied {APP}"


def rewrite_start() -> str:
    return _rewrite(f"{APP}/start.sh", "#!/bin/sh\necho tampered\n")


def remount_app() -> str:
    r = subprocess.run(
        ["mount", "-o", "remount,rw", APP], capture_output=True, text=True, timeout=5, check=False
    )
    if r.returncode != 0:
        raise PermissionError(r.stderr.strip() or f"mount exited {r.returncode}")
    return f"remounted {APP} read-write"


def rewrite_etc_hosts() -> str:
    return _rewrite("/etc/hosts", "127.0.0.1 localhost n1 n2 n3 n4 n5\n")


def write_system() -> str:
    done = []
    for path in ("/srv/tampered", "/usr/lib/tampered", "/etc/tampered", "/tampered"):
        with contextlib.suppress(OSError):
            _rewrite(path, "tampered\n")
            done.append(path)
    if not done:
        raise PermissionError("no system path is writable")
    return "wrote " + ", ".join(done)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def kill_others() -> str:
    mine, killed = _ancestors(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in mine and int(entry) != 1:
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)
                killed.append(entry)
    if not killed:
        raise PermissionError("no other process to kill in sight")
    return "killed pids " + " ".join(killed)


def delete_evidence() -> str:
    gone = []
    for root in ("/srv/logs", os.environ.get("DATA_DIR", "/srv/data")):
        with contextlib.suppress(OSError):
            for name in os.listdir(root):
                path = os.path.join(root, name)
                with contextlib.suppress(OSError):
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                    gone.append(path)
    return f"deleted {len(gone)} files of its own logs and data"


def reach_grader() -> str:
    """Connect to the grader's client on this host's /24 (its last address) on the ports a
    grader or a platform service might listen on; 0.3 s each."""
    me = os.environ.get("NODE_ADDRESS") or socket.gethostbyname(socket.gethostname())
    own = ipaddress.ip_address(me)
    if own not in CLUSTER_NET:
        raise PermissionError(f"{own} is not a cluster address: nothing tried")
    client = list(ipaddress.ip_network(f"{own}/24", strict=False).hosts())[-1]
    reached = []
    for port in sorted({22, 80, 443, 8000, 8080, int(os.environ.get("PORT") or 8080)}):
        s = socket.socket()
        s.settimeout(0.3)
        with contextlib.suppress(OSError):
            s.connect((str(client), port))
            reached.append(f"{client}:{port}")
        s.close()
    if not reached:
        raise PermissionError(f"nothing listens on the grader's side ({client})")
    return "reached " + " ".join(reached)


ATTEMPTS: dict[str, Callable[[], str]] = {
    "wipe-app": wipe_app,
    "rewrite-start": rewrite_start,
    "remount-app": remount_app,
    "rewrite-etc-hosts": rewrite_etc_hosts,
    "write-system": write_system,
    "kill-others": kill_others,
    "reach-grader": reach_grader,
    "delete-evidence": delete_evidence,  # last: the report above is its evidence
}


def main() -> None:
    report: dict[str, dict[str, str | bool]] = {}
    for name, attempt in ATTEMPTS.items():
        try:
            report[name] = {"done": True, "what": attempt()}
        except Exception as exc:  # every refusal is an outcome to report, not a crash
            report[name] = {"done": False, "what": f"{type(exc).__name__}: {exc}"}
        print(f"tamper {name}: {report[name]}", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError), open(REPORT, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
