"""greeter: GET /health -> ok; GET /greeting -> the greeting of $CONF (read at start)."""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load(path: str) -> dict[str, str]:
    conf = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep:
                conf[key.strip()] = value.strip()
    return conf


CONF = load(os.environ["CONF"])
GREETING = CONF.get("greeting", "hello")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/health":
            body = b"ok\n"
        elif self.path == "/greeting":
            body = f"{GREETING}\n".encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        if self.path != "/health":
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


print(f"greeter on {os.environ['NODE_ID']}: greeting {GREETING!r}", flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
