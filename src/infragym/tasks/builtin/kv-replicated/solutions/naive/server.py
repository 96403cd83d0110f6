"""The naive replicated key-value service: store locally, acknowledge, replicate later.

A write is applied to this node's memory and acknowledged at once; a background sender
per peer then forwards it (in order, best effort, no retry). Reads answer from local
memory. On a calm cluster every node converges within milliseconds, so every functional
test passes; under faults it loses and reorders data: a crash forgets everything the node
held, a paused or partitioned peer misses writes forever, and reads on a lagging node
return stale values.

Run with the contract's environment: NODE_ID, PEERS (id=address,...), PORT.
"""

from __future__ import annotations

import http.client
import http.server
import os
import queue
import re
import threading
from typing import Any

KEY_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
STORE: dict[str, str] = {}
LOCK = threading.Lock()
OUTBOX: dict[str, queue.Queue[tuple[str, bytes]]] = {}
PORT = int(os.environ.get("PORT", "8080"))


def sender(address: str, box: queue.Queue[tuple[str, bytes]]) -> None:
    while True:
        key, body = box.get()
        try:
            conn = http.client.HTTPConnection(address, PORT, timeout=1.0)
            conn.request("PUT", f"/replica/{key}", body=body)
            conn.getresponse().read()
            conn.close()
        except OSError:
            pass  # fire and forget


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _key(self, prefix: str) -> str | None:
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] == prefix and KEY_RE.match(parts[2]):
            return parts[2]
        return None

    def do_GET(self) -> None:
        key = self._key("kv")
        with LOCK:
            value = STORE.get(key) if key is not None else None
        if value is None:
            self._reply(404)
        else:
            self._reply(200, value.encode("utf-8"))

    def do_PUT(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        key = self._key("kv")
        if key is not None:
            with LOCK:
                STORE[key] = body.decode("utf-8")
            for box in OUTBOX.values():
                box.put((key, body))
            self._reply(204)
            return
        key = self._key("replica")
        if key is None:
            self._reply(404)
            return
        with LOCK:
            STORE[key] = body.decode("utf-8")
        self._reply(204)


def main() -> None:
    me = os.environ["NODE_ID"]
    for item in os.environ["PEERS"].split(","):
        name, address = item.split("=", 1)
        if name != me:
            box: queue.Queue[tuple[str, bytes]] = queue.Queue()
            OUTBOX[name] = box
            threading.Thread(target=sender, args=(address, box), daemon=True).start()
    server = http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
