"""kvnode: the production node of the kv service.

The replication is server.py's (one ABD register per key over majority quorums, every
value fsync'd to an append-only log before a replica answers). kvnode adds what running it
in production needs:

- membership: /srv/etc/kv/peers (``name=address`` per line or comma-separated) when it
  exists, else the deployment's PEERS; read at start;
- settings: /srv/etc/kv/kv.conf (debug trace on or off, where, rotation), read at start;
- the release: /srv/etc/kv/version (``1`` by default, ``2`` runs release-2's storage);
- admin endpoints: GET /admin/status (JSON) and GET /admin/dump (every local entry, one
  JSON object per line), used by kvctl.py;
- errors with UTC timestamps in the service log (stdout).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

APP = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, APP)

import server  # noqa: E402  (the replicated store)

CONF_DIR = os.environ.get("KV_CONF", "/srv/etc/kv")


def utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def log(msg: str) -> None:
    print(f"{utc()} {msg}", flush=True)


def read_conf(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                line = raw.split("#", 1)[0].strip()
                if "=" in line:
                    k, v = line.split("=", 1)
                    out[k.strip()] = v.strip()
    except FileNotFoundError:
        pass
    return out


def membership() -> dict[str, str]:
    """The peers file if there is one, else the deployment's PEERS."""
    path = os.path.join(CONF_DIR, "peers")
    text = os.environ.get("PEERS", "")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    parts = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    return dict(p.split("=", 1) for p in parts)


def release() -> str:
    try:
        with open(os.path.join(CONF_DIR, "version"), encoding="utf-8") as fh:
            return fh.read().strip() or "1"
    except FileNotFoundError:
        return "1"


class Trace:
    """The debug trace: one line per request, appended to an open file (as a logger
    does); rotated past ``max_bytes`` (0: never), one old file kept. A failed write
    raises: the request is answered 500."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.lock = threading.Lock()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, line: str) -> None:
        data = line.encode("utf-8", "replace")
        with self.lock:
            if self.max_bytes and os.fstat(self.fd).st_size + len(data) > self.max_bytes:
                os.close(self.fd)
                os.replace(self.path, self.path + ".1")
                self.fd = self._open()
            os.write(self.fd, data)


class NodeHandler(server.Handler):
    trace: Trace | None = None
    status: ClassVar[dict[str, Any]] = {}

    def _guarded(self, fn: Callable[[], None]) -> None:
        try:
            if self.trace is not None:
                self.trace.write(
                    f"{utc()} DEBUG {self.command} {self.path} from={self.client_address[0]} "
                    f"headers={json.dumps(dict(self.headers))}\n"
                )
            fn()
        except Exception as exc:
            log(f"ERROR {self.command} {self.path}: {exc!r}")
            self.close_connection = True
            try:
                self._reply(500, b"internal error: outcome unknown\n")
            except OSError:
                pass

    def do_GET(self) -> None:
        if self.path == "/admin/status":
            self._guarded(self._status)
        elif self.path == "/admin/dump":
            self._guarded(self._dump)
        else:
            self._guarded(self._get)

    def _status(self) -> None:
        replica = self.cluster.replica
        with replica.lock:
            keys = sum(1 for _, v in replica.entries.values() if v is not None)
        body = {**self.status, "keys": keys, "data_file": replica.path,
                "data_bytes": os.path.getsize(replica.path) if os.path.exists(replica.path)
                else 0}  # fmt: skip
        self._reply(200, json.dumps(body).encode(), "application/json")

    def _dump(self) -> None:
        replica = self.cluster.replica
        with replica.lock:
            items = list(replica.entries.items())
        lines = [json.dumps({"k": k, "c": c, "n": n, "v": v}) for k, ((c, n), v) in items]
        self._reply(200, ("\n".join(lines) + "\n").encode(), "application/x-ndjson")


def open_replica(version: str, data_dir: str) -> server.Replica:
    v1 = os.path.join(data_dir, "replica.log")
    if version == "1":
        if not os.path.exists(v1) and os.path.isdir(os.path.join(data_dir, "kv2")):
            sys.exit(
                f"{data_dir} holds release 2 data (kv2/) and no replica.log: this node was "
                "migrated; set /srv/etc/kv/version to 2"
            )
        return server.Replica(data_dir)
    if version == "2":
        sys.path.insert(0, os.path.join(APP, "release-2"))
        import store_v2

        return store_v2.open_store(data_dir)
    sys.exit(f"/srv/etc/kv/version says {version!r}; releases are 1 and 2")


def main() -> None:
    me = os.environ["NODE_ID"]
    port = int(os.environ.get("PORT", "8080"))
    data_dir = os.environ.get("DATA_DIR", "/srv/data")
    peers = membership()
    if me not in peers:
        sys.exit(f"NODE_ID {me} is not one of the peers {sorted(peers)}")
    conf = read_conf(os.path.join(CONF_DIR, "kv.conf"))
    version = release()
    replica = open_replica(version, data_dir)
    if conf.get("debug", "off").lower() in ("on", "true", "yes", "1"):
        path = conf.get("debug_log", "/srv/data/log/debug.log")
        NodeHandler.trace = Trace(path, int(conf.get("debug_log_max_bytes", "0") or 0))
    NodeHandler.cluster = server.Cluster(me, peers, port, replica)
    NodeHandler.status = {
        "node": me, "release": version, "peers": peers, "majority": len(peers) // 2 + 1,
        "debug_log": NodeHandler.trace.path if NodeHandler.trace else None,
        "started": utc(), "pid": os.getpid(),
    }  # fmt: skip
    httpd = server.Server(("0.0.0.0", port), NodeHandler)
    log(f"{me}: release {version} serving on :{port}, peers {sorted(peers)}")
    httpd.serve_forever()


if __name__ == "__main__":
    main()
