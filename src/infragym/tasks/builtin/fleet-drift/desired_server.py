"""The config host's desired-state server (the platform's, never the agent's).

Serves ``$DESIRED_FILE`` at ``GET /desired.json`` with a strong ETag (the content's
SHA-256) and answers ``If-None-Match`` with 304. The grader replaces the file atomically
to publish a new desired state. Standard-library Python, run with the host's python3.
"""

import hashlib
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = os.environ["DESIRED_FILE"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/desired.json":
            self._send(404, b"not found\n", "text/plain")
            return
        try:
            with open(PATH, "rb") as fh:
                body = fh.read()
        except OSError:
            self._send(503, b"no desired state yet\n", "text/plain")
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if self.headers.get("If-None-Match") == etag:
            self._send(304, b"", "application/json", etag)
            return
        self._send(200, body, "application/json", etag)

    def _send(self, status: int, body: bytes, ctype: str, etag: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
