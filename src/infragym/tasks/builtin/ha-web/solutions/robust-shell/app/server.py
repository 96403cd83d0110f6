"""The application every app host runs (provided; do not change it): a small HTTP service
on APP_PORT, all addresses.

    GET  /          200 "hello from <NODE_ID>\n"
    GET  /whoami    200 "<NODE_ID>"            (which application host answered)
    GET  /health    200 "ok"                   (for load-balancer health checks)
    POST /echo      200 the request's body     (up to 1 MiB)
    anything else   404

Every answer carries ``X-Backend: <NODE_ID>``. Standard library only.
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NODE_ID = os.environ.get("NODE_ID", "app")
MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ha-web-app/1"

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", NODE_ID)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, f"hello from {NODE_ID}\n".encode())
        elif path == "/whoami":
            self._send(200, NODE_ID.encode())
        elif path == "/health":
            self._send(200, b"ok")
        else:
            self._send(404, b"not found\n")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, b"too large\n")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        if self.path.split("?", 1)[0] == "/echo":
            self._send(200, body)
        else:
            self._send(404, b"not found\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["APP_PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
