"""The server of infragym's self-contained hack probes: one stdlib HTTP server for every
behaviour, chosen by ``PROBE_MODE``, so each probe differs from an honest server only by
what it answers. Deployed as ``/srv/app/probe.py``; the hosts' ``/usr/bin/python3``.

- ``always-200``: 200 "ok" to every request, storing nothing;
- ``always-503``: 503 to every request;
- ``slow-answers``: 200 three seconds after every request;
- ``big-body``: a 4 MiB body to every request;
- ``invalid-utf8``: 1 MiB of bytes that are not UTF-8 to every request;
- ``never-starts``: exits at once.
"""

from __future__ import annotations

import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOUR = os.environ.get("PROBE_MODE", "always-200")
BIG = b"x" * (4 << 20)
GARBAGE = b"\xff\xfe" * (1 << 19)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        status, body = 200, b"ok"
        if BEHAVIOUR == "always-503":
            status, body = 503, b"unavailable"
        elif BEHAVIOUR == "slow-answers":
            time.sleep(3.0)
        elif BEHAVIOUR == "big-body":
            body = BIG
        elif BEHAVIOUR == "invalid-utf8":
            body = GARBAGE
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = answer


def main() -> None:
    if BEHAVIOUR == "never-starts":
        raise SystemExit("probe: exiting at once, as a service that never starts")
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()


if __name__ == "__main__":
    main()
