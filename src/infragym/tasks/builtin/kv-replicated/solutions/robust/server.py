"""A replicated key-value service: one ABD register per key over majority quorums.

Every node is a replica and a coordinator. Each key holds a value stamped with a timestamp
``(counter, node id)``; a replica keeps the value with the largest stamp it has seen.

- write: ask a majority for their stamps, pick ``(max counter + 1, my id)``, store the
  value on a majority, then acknowledge;
- read: ask a majority for (stamp, value), take the largest; if some replica of that
  majority lags, write the value back to a majority first, then answer.

Any two majorities intersect, so a read sees every acknowledged write and a completed read
is never followed by an older one: reads and writes are linearizable. A replica appends
every value it accepts to its log in ``DATA_DIR`` and fsyncs before answering, so a crash
loses nothing it acknowledged. A request waits for the first majority only (a dead, paused
or partitioned peer costs nothing while a majority answers) and fails fast, 503, when no
majority answers within the peer timeout.

Status codes are chosen so a client never misreads an outcome: 503 only when the write
surely was not applied (no majority answered the stamp query, so nothing was stored);
500 when the value may have reached some replicas (the outcome is unknown).

Run with the contract's environment: NODE_ID, PEERS (id=address,...), PORT, DATA_DIR.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

Stamp = tuple[int, str]
Entry = tuple[Stamp, str | None]
ZERO: Stamp = (0, "")
PEER_TIMEOUT_S = 0.4
KEY_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
MAX_VALUE_BYTES = 1 << 20
COMPACT_EVERY = 20_000


class Replica:
    """This node's copy of every register, durable in an fsync'd append-only log."""

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, "replica.log")
        self.lock = threading.Lock()
        self.entries: dict[str, Entry] = {}
        self.appended = 0
        self._load()
        self.log = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _load(self) -> None:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return
        good = 0  # bytes of whole records
        with fh:
            for line in fh:
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn")
                    rec = json.loads(line)
                    key, stamp, value = rec["k"], (int(rec["c"]), str(rec["n"])), rec["v"]
                except (ValueError, KeyError, TypeError):
                    break  # a torn last record was never acknowledged
                if stamp > self.entries.get(key, (ZERO, None))[0]:
                    self.entries[key] = (stamp, value)
                self.appended += 1
                good += len(line)
        # cut a torn tail off, or the next record would be glued to it and lost with
        # everything after it at the next start
        os.truncate(self.path, good)

    def get(self, key: str) -> Entry:
        with self.lock:
            return self.entries.get(key, (ZERO, None))

    def put(self, key: str, stamp: Stamp, value: str | None) -> None:
        """Keep ``value`` if its stamp is newer; durable before this returns."""
        with self.lock:
            if stamp <= self.entries.get(key, (ZERO, None))[0]:
                return
            rec = {"k": key, "c": stamp[0], "n": stamp[1], "v": value}
            self.log.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.log.flush()
            os.fsync(self.log.fileno())
            self.entries[key] = (stamp, value)
            self.appended += 1
            if self.appended > COMPACT_EVERY + 2 * len(self.entries):
                self._compact()

    def _compact(self) -> None:
        """Rewrite the log as one record per key (atomically: write, fsync, rename)."""
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            for key, ((c, n), v) in self.entries.items():
                fh.write(json.dumps({"k": key, "c": c, "n": n, "v": v}, ensure_ascii=False))
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.log.close()
        self.log = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self.appended = len(self.entries)


class Cluster:
    """Talks to the peers: every call has a deadline, and a majority is all we wait for."""

    def __init__(self, me: str, peers: dict[str, str], port: int, replica: Replica) -> None:
        self.me = me
        self.peers = {n: a for n, a in peers.items() if n != me}
        self.port = port
        self.replica = replica
        self.majority = len(peers) // 2 + 1
        # one pool per peer: a dead peer ties up its own threads, never a healthy one's
        self.pools = {
            n: ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"peer-{n}")
            for n in self.peers
        }
        self.local = threading.local()  # each pool thread's kept connections, by peer
        self.issued: dict[str, int] = {}
        self.issue_lock = threading.Lock()

    def _rpc(self, peer: str, method: str, path: str, body: bytes | None, deadline: float) -> Any:
        # each pool thread keeps one connection to its peer: no connection (and no thread
        # on the peer) per call. A kept connection the peer closed meanwhile (it restarted,
        # or dropped an idle one) fails before anything was answered: once more, afresh.
        kept = getattr(self.local, peer, None)
        for reuse in (kept, None) if kept is not None else (None,):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline passed before the call started")
            fresh = reuse is None
            if reuse is None:
                conn = http.client.HTTPConnection(self.peers[peer], self.port, timeout=left)
            else:
                conn = reuse
                conn.timeout = left
                if conn.sock is not None:
                    conn.sock.settimeout(left)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                setattr(self.local, peer, None)
                if fresh:
                    raise
                continue
            except BaseException:
                conn.close()
                setattr(self.local, peer, None)
                raise
            if resp.will_close:
                conn.close()
                setattr(self.local, peer, None)
            else:
                setattr(self.local, peer, conn)
            if resp.status != 200:
                raise OSError(f"{peer} answered {resp.status}")
            return json.loads(data)
        raise OSError(f"{peer}: no answer")

    def _quorum(
        self, local: Callable[[], Any], remote: Callable[[str, float], Any]
    ) -> list[Any] | None:
        """Results from the first majority (this node included), or None if none answers."""
        deadline = time.monotonic() + PEER_TIMEOUT_S
        results: list[Any] = []
        try:
            results.append(local())
        except OSError as exc:  # a full or failing disk: this replica does not count
            print(f"local replica failed: {exc!r}", file=sys.stderr, flush=True)
        if len(results) >= self.majority:
            return results
        pending: set[Future[Any]] = {self.pools[p].submit(remote, p, deadline) for p in self.peers}
        while pending and len(results) < self.majority:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
            for f in done:
                if f.exception() is None:
                    results.append(f.result())
        return results if len(results) >= self.majority else None

    def query(self, key: str) -> list[Entry] | None:
        def remote(peer: str, deadline: float) -> Entry:
            r = self._rpc(peer, "GET", f"/internal/{key}", None, deadline)
            return (int(r["c"]), str(r["n"])), r["v"]

        return self._quorum(lambda: self.replica.get(key), remote)

    def store(self, key: str, stamp: Stamp, value: str | None) -> bool:
        body = json.dumps({"c": stamp[0], "n": stamp[1], "v": value}).encode()

        def remote(peer: str, deadline: float) -> bool:
            self._rpc(peer, "PUT", f"/internal/{key}", body, deadline)
            return True

        def local() -> bool:
            self.replica.put(key, stamp, value)
            return True

        return self._quorum(local, remote) is not None

    def new_stamp(self, key: str, seen: int) -> Stamp:
        """A stamp above every one seen, never issued twice by this node."""
        with self.issue_lock:
            c = max(seen, self.issued.get(key, 0)) + 1
            self.issued[key] = c
            return (c, self.me)

    def write(self, key: str, value: str) -> int:
        entries = self.query(key)
        if entries is None:
            return 503  # nothing was stored anywhere
        stamp = self.new_stamp(key, max(s for s, _ in entries)[0])
        return 204 if self.store(key, stamp, value) else 500

    def read(self, key: str) -> tuple[int, str | None]:
        entries = self.query(key)
        if entries is None:
            return 503, None
        stamp, value = max(entries, key=lambda e: e[0])
        if any(s != stamp for s, _ in entries) and not self.store(key, stamp, value):
            return 503, None
        return (404, None) if value is None else (200, value)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kv-abd"
    cluster: Cluster

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes | None:
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_VALUE_BYTES:
            return None
        return self.rfile.read(n) if n else b""

    def _route(self) -> tuple[str, str] | None:
        parts = self.path.split("?", 1)[0].split("/")
        if len(parts) == 3 and parts[1] in ("kv", "internal") and KEY_RE.match(parts[2]):
            return parts[1], parts[2]
        return None

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_PUT(self) -> None:
        self._guarded(self._put)

    def _guarded(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # never leave a client without an answer
            print(f"{self.command} {self.path}: {exc!r}", file=sys.stderr, flush=True)
            self.close_connection = True
            try:
                self._reply(500, b"internal error: outcome unknown\n")
            except OSError:
                pass

    def _get(self) -> None:
        route = self._route()
        if route is None:
            self._reply(404, b"no such resource\n")
        elif route[0] == "internal":
            (c, n), v = self.cluster.replica.get(route[1])
            self._reply(200, json.dumps({"c": c, "n": n, "v": v}).encode(), "application/json")
        else:
            status, value = self.cluster.read(route[1])
            if status == 200 and value is not None:
                self._reply(200, value.encode("utf-8"), "application/octet-stream")
            elif status == 404:
                self._reply(404, b"no such key\n")
            else:
                self._reply(status, b"no majority of replicas reachable\n")

    def _put(self) -> None:
        route = self._route()
        body = self._body()
        if route is None or body is None:
            self.close_connection = True
            self._reply(404 if route is None else 413, b"bad request\n")
            return
        if route[0] == "internal":
            try:
                rec = json.loads(body)
                stamp = (int(rec["c"]), str(rec["n"]))
                value = rec["v"]
            except (ValueError, KeyError, TypeError):
                self._reply(400, b"bad record\n")
                return
            self.cluster.replica.put(route[1], stamp, value)
            self._reply(200, b"{}", "application/json")
            return
        try:
            value = body.decode("utf-8")
        except UnicodeDecodeError:
            self._reply(400, b"values must be UTF-8 text\n")
            return
        status = self.cluster.write(route[1], value)
        self._reply(status, b"" if status == 204 else b"write not confirmed by a majority\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


def main() -> None:
    me = os.environ["NODE_ID"]
    peers = dict(p.split("=", 1) for p in os.environ["PEERS"].split(",") if p)
    port = int(os.environ.get("PORT", "8080"))
    data_dir = os.environ.get("DATA_DIR", "/srv/data")
    if me not in peers:
        sys.exit(f"NODE_ID {me} is not one of PEERS {sorted(peers)}")
    Handler.cluster = Cluster(me, peers, port, Replica(data_dir))
    server = Server(("0.0.0.0", port), Handler)
    print(f"{me}: serving on :{port}, peers {peers}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
