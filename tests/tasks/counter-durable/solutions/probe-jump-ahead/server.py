"""counter-durable, probe-jump-ahead: the count lives in memory only, but a restart
resumes far above anything counted before (from the time since the first start), so the
counter never goes backwards and never repeats a value although it forgot every increment.
A checker that only looks for values going backwards or repeating would call it durable."""

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
MARK = os.path.join(os.environ.get("DATA_DIR", "/srv/data"), "started")
if os.path.exists(MARK):
    VALUE = int((time.time() - os.path.getmtime(MARK)) * 100_000)
else:
    open(MARK, "w").close()
    VALUE = 0


def incr() -> int:
    global VALUE
    with LOCK:
        VALUE += 1
        return VALUE


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
