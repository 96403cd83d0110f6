"""store: a one-host key-value store. PUT /kv/<key> appends the write to a log on the
data disk and fsyncs it before answering; GET /kv/<key> answers the value (404 if
absent); GET /health answers ok. The log is replayed at start."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = "/srv/data/kv.log"
STORE: dict[str, str] = {}
LOCK = threading.Lock()
if os.path.exists(LOG):
    with open(LOG, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                key, value = json.loads(line)
            except ValueError:
                continue
            STORE[key] = value


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the header and the body leave at once

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            return self._send(200, b"ok")
        key = self.path.removeprefix("/kv/")
        with LOCK:
            value = STORE.get(key)
        self._send(404, b"") if value is None else self._send(200, value.encode())

    def do_PUT(self) -> None:
        key = self.path.removeprefix("/kv/")
        value = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with LOCK, open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps([key, value]) + "\n")
            f.flush()
            os.fsync(f.fileno())
            STORE[key] = value
        self._send(200, b"ok")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
