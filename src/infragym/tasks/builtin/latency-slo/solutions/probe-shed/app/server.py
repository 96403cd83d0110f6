"""A token bucket of 10 requests per second; the rest answered 503 at once."""

import threading
import time

import shop

RATE = 10.0
STATE = {"tokens": RATE, "t": time.monotonic()}
LOCK = threading.Lock()


def admit():
    with LOCK:
        now = time.monotonic()
        STATE["tokens"] = min(RATE, STATE["tokens"] + (now - STATE["t"]) * RATE)
        STATE["t"] = now
        if STATE["tokens"] >= 1:
            STATE["tokens"] -= 1
            return True
        return False


class Shed(shop.Handler):
    def do_GET(self):
        if self.path == "/health" or admit():
            return super().do_GET()
        self.reply(503, {"error": "overloaded"})

    def do_POST(self):
        if admit():
            return super().do_POST()
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(503, {"error": "overloaded"})


shop.main(Shed)
