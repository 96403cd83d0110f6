"""counter-durable, robust: each increment is written to DATA_DIR and fsynced before the
answer, under one lock, so an acknowledged value survives a crash of every process."""

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = os.path.join(os.environ.get("DATA_DIR", "/srv/data"), "counter")
WIDTH = 24  # fixed width: one small pwrite at offset 0 replaces the value whole


def load() -> int:
    try:
        with open(PATH, encoding="ascii") as f:
            return int(f.read().strip() or "0")
    except FileNotFoundError:
        return 0


LOCK = threading.Lock()
VALUE = load()
FD = os.open(PATH, os.O_RDWR | os.O_CREAT, 0o600)


def incr() -> int:
    global VALUE
    with LOCK:
        new = VALUE + 1
        os.pwrite(FD, f"{new:>{WIDTH - 1}}\n".encode(), 0)
        os.fsync(FD)
        VALUE = new
        return new


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/incr":
            self.answer(200, f"{incr()}\n")
        else:
            self.answer(404, "not found\n")

    def do_GET(self) -> None:
        if self.path == "/value":
            with LOCK:
                v = VALUE
            self.answer(200, f"{v}\n")
        else:
            self.answer(404, "not found\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 128  # the listen backlog: 5 by default
ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
