"""A broken key-value service: every node keeps its own data and never replicates.

A value written on one node is invisible on the others, so the service fails its
functional contract (a write on n1 must be readable on n2), whatever it does under faults.

Run with the contract's environment: PORT.
"""

from __future__ import annotations

import http.server
import os
import threading
from typing import Any

STORE: dict[str, bytes] = {}
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with LOCK:
            value = STORE.get(self.path)
        if value is None:
            self._reply(404)
        else:
            self._reply(200, value)

    def do_PUT(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with LOCK:
            STORE[self.path] = body
        self._reply(204)


def main() -> None:
    server = http.server.ThreadingHTTPServer(
        ("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler
    )
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
