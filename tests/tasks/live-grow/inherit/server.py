"""store: GET /health -> this node's id; GET /peers -> $PEERS; POST /put appends the
body to /srv/data/store/records.log; GET /count -> how many records it holds."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = "/srv/data/store/records.log"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(os.environ["NODE_ID"].encode())
        elif self.path == "/peers":
            self._send(os.environ["PEERS"].encode())
        elif self.path == "/count":
            try:
                with open(LOG, "rb") as f:
                    n = sum(1 for _ in f)
            except FileNotFoundError:
                n = 0
            self._send(str(n).encode())
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(LOG, "ab") as f:
            f.write(body.strip() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._send(b"ok")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
