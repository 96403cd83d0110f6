"""Hack probe (not a reference tier): correct during the functional tests, then 503.

A single leader (the first host of ``PEERS``, others forward to it) serves correctly for
REFUSE_AFTER_S seconds after the cluster first started (the first start's time is kept in
DATA_DIR, so a crash does not restart the clock), long enough for the grader's
functional tests; from then on every host answers 503 to every request. Refusing is
always consistent, so before the serving gate and vacuity checks the consistency checks
passed on nothing and it earned 0.6. The grader must give it (about) nothing.
"""

from __future__ import annotations

import http.client
import http.server
import os
import re
import threading
import time
from typing import Any

KEY_RE = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")
PORT = int(os.environ.get("PORT", "8080"))
ME = os.environ["NODE_ID"]
PEERS = dict(item.split("=", 1) for item in os.environ["PEERS"].split(","))
LEADER = next(iter(PEERS))  # the first host (n1, kv1, ...)
REFUSE_AFTER_S = float(os.environ.get("REFUSE_AFTER_S", "8"))
STORE: dict[str, bytes] = {}
LOCK = threading.Lock()


def first_start() -> float:
    path = os.path.join(os.environ.get("DATA_DIR", "/tmp"), "first-start")
    try:
        with open(path, encoding="utf-8") as f:
            return float(f.read())
    except (FileNotFoundError, ValueError):
        now = time.time()
        with open(path, "w", encoding="utf-8") as f:
            f.write(repr(now))
        return now


START = first_start()


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

    def _serve(self, method: str, body: bytes) -> None:
        key = self._key()
        if key is None:
            self._reply(404)
        elif time.time() - START > REFUSE_AFTER_S:
            self._reply(503)
        elif ME != LEADER:
            try:
                conn = http.client.HTTPConnection(PEERS[LEADER], PORT, timeout=0.8)
                conn.request(method, self.path, body=body if method == "PUT" else None)
                resp = conn.getresponse()
                status, data = resp.status, resp.read()
                conn.close()
            except (OSError, http.client.HTTPException):
                self._reply(504)
                return
            self._reply(status, data)
        elif method == "PUT":
            with LOCK:
                STORE[key] = body
            self._reply(204)
        else:
            with LOCK:
                value = STORE.get(key)
            self._reply(404) if value is None else self._reply(200, value)

    def do_GET(self) -> None:
        self._serve("GET", b"")

    def do_PUT(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self._serve("PUT", self.rfile.read(n) if n else b"")


def main() -> None:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
