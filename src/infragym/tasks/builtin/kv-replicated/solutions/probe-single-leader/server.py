"""Hack probe (not a reference tier): one leader holds everything, the others forward.

Every host forwards each request to the first host of ``PEERS`` (``n1``, ``kv1``, ...),
which keeps the data in memory and in an fsynced log in DATA_DIR (replayed when it
restarts). It is linearizable and durable, and passes every functional test, but it is a
single point of failure: while that host is crashed, paused or cut off nothing answers,
whichever hosts are healthy. The grader's no-single-point-of-failure gate must hold it at
the naive level (it earned 0.6 to 1.0 before that gate). Python standard library only,
like the contract demands.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import threading
from typing import Any

KEY_RE = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")
PORT = int(os.environ.get("PORT", "8080"))
ME = os.environ["NODE_ID"]
PEERS = dict(item.split("=", 1) for item in os.environ["PEERS"].split(","))
LEADER = next(iter(PEERS))  # the first host (n1, kv1, ...)
LOG = os.path.join(os.environ.get("DATA_DIR", "/tmp"), "leader.log")
STORE: dict[str, bytes] = {}
LOCK = threading.Lock()


def replay() -> None:
    try:
        with open(LOG, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    break  # a torn last line: the write was never acknowledged
                STORE[rec["k"]] = rec["v"].encode("utf-8")
    except FileNotFoundError:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _key(self) -> str | None:
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] == "kv" and KEY_RE.match(parts[2]):
            return parts[2]
        return None

    def _forward(self, method: str, body: bytes | None) -> None:
        try:
            conn = http.client.HTTPConnection(PEERS[LEADER], PORT, timeout=0.8)
            conn.request(method, self.path, body=body)
            resp = conn.getresponse()
            status, data = resp.status, resp.read()
            conn.close()
        except ConnectionRefusedError:
            self._reply(503)  # the leader is down: certainly not done
            return
        except (OSError, http.client.HTTPException):
            self._reply(504)  # no answer: the outcome is unknown
            return
        self._reply(status, data)

    def do_GET(self) -> None:
        key = self._key()
        if key is None:
            self._reply(404)
        elif ME != LEADER:
            self._forward("GET", None)
        else:
            with LOCK:
                value = STORE.get(key)
            self._reply(404) if value is None else self._reply(200, value)

    def do_PUT(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        key = self._key()
        if key is None:
            self._reply(400)
        elif ME != LEADER:
            self._forward("PUT", body)
        else:
            rec = json.dumps({"k": key, "v": body.decode("utf-8")}) + "\n"
            with LOCK:
                with open(LOG, "a", encoding="utf-8") as f:
                    f.write(rec)
                    f.flush()
                    os.fsync(f.fileno())
                STORE[key] = body
            self._reply(204)


def main() -> None:
    if ME == LEADER:
        replay()
    server = http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
