"""The session service: it counts each user's visits and signs every answer.

    POST /users/<user>/visit   one more visit: 200 {"user", "visits", "host", "token"}
    GET  /users/<user>         the user's count (0 for a user never seen), same body
    GET  /health               200 "ok"

<user> is 1-64 of [a-z0-9_-]. "visits" is the user's count after the request, "host" the
answering host (NODE_ID) and "token" the session signature (the request's real work):
hex PBKDF2-HMAC-SHA256 of "<user>:<visits>" keyed with SESSION_KEY, WORK iterations.
Listens on APP_PORT (HTTP/1.1, keep-alive). The counts are kept by ``store.STORE``
(store.py).
"""

import hashlib
import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from store import STORE

NODE_ID = os.environ.get("NODE_ID", "app")
KEY = os.environ.get("SESSION_KEY", "dev").encode()
WORK = int(os.environ.get("WORK", "10000"))
USER = re.compile(r"^/users/([a-z0-9_-]{1,64})(/visit)?$")


def token(user: str, visits: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", f"{user}:{visits}".encode(), KEY, WORK).hex()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def session(self, visit: bool) -> None:
        m = USER.match(self.path)
        if m is None or bool(m.group(2)) != visit:
            self.answer(404, b'{"error": "not found"}')
            return
        user = m.group(1)
        try:
            visits = STORE.visit(user) if visit else STORE.get(user)
        except Exception as exc:  # the store is away: say so, never guess
            self.answer(503, json.dumps({"error": str(exc)}).encode())
            return
        body = {"user": user, "visits": visits, "host": NODE_ID, "token": token(user, visits)}
        self.answer(200, json.dumps(body).encode())

    def do_GET(self) -> None:
        if self.path == "/health":
            self.answer(200, b"ok", "text/plain")
        else:
            self.session(visit=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 16))
        self.session(visit=True)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


if __name__ == "__main__":
    Server(("0.0.0.0", int(os.environ["APP_PORT"])), Handler).serve_forever()
