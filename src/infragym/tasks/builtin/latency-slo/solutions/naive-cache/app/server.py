"""robust's server with a cache of GET answers that writes never invalidate."""

import threading

import shop

CACHE = {}
LOCK = threading.Lock()


class Cached(shop.Handler):
    def reply(self, status, doc):
        if self.command == "GET" and status == 200:
            with LOCK:
                CACHE[self.path] = doc
        super().reply(status, doc)

    def do_GET(self):
        with LOCK:
            hit = CACHE.get(self.path)
        if hit is not None:
            return super().reply(200, hit)
        super().do_GET()


shop.main(Cached)
