"""The demo's key-value service: each key has one owner host; the others forward to it.

Writes are appended to a log on the host's data disk and fsync'd before the answer, so a
crash loses nothing acknowledged, and one owner per key keeps reads consistent. But every
key lives on one host only: a crash, pause or partition of that host makes its keys
unavailable. That is what the demo's checkers should find.

Run on a host as: ``python kv_server.py PORT ADDR1,ADDR2,... MY_ADDR``.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
import urllib.error
import urllib.request
import zlib

PORT = int(sys.argv[1])
PEERS = sys.argv[2].split(",")
ME = sys.argv[3]
LOG = os.path.join(os.environ.get("INFRAGYM_DATA_DIR", "/tmp"), "kv.log")
STORE: dict[str, str] = {}
LOCK = threading.Lock()


def replay() -> None:
    try:
        with open(LOG, encoding="utf-8") as fh:
            for line in fh:
                try:
                    k, v = json.loads(line)
                except ValueError:
                    break  # a torn last line: the write was never acknowledged
                STORE[k] = v
    except FileNotFoundError:
        pass


def persist(key: str, value: str) -> None:
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps([key, value]) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, code: int, body: bytes = b"") -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _key(self) -> str | None:
        parts = self.path.split("/")
        return parts[2] if len(parts) >= 3 and parts[1] == "kv" and parts[2] else None

    def _forward(self, owner: str, body: bytes | None) -> None:
        req = urllib.request.Request(
            f"http://{owner}:{PORT}{self.path}", data=body, method=self.command
        )
        try:
            with urllib.request.urlopen(req, timeout=1.0) as resp:
                self._reply(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            self._reply(exc.code, exc.read())
        except OSError:
            self._reply(503, b"owner unreachable")

    def _handle(self) -> None:
        key = self._key()
        if key is None:
            self._reply(404)
            return
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        owner = PEERS[zlib.crc32(key.encode()) % len(PEERS)]
        if owner != ME:
            self._forward(owner, body if self.command != "GET" else None)
            return
        with LOCK:
            if self.command == "GET":
                v = STORE.get(key)
                self._reply(404) if v is None else self._reply(200, v.encode())
            elif self.command == "PUT":
                persist(key, body.decode())
                STORE[key] = body.decode()
                self._reply(204)
            elif self.command == "POST" and self.path.endswith("/cas"):
                req = json.loads(body or b"{}")
                if STORE.get(key) != req.get("expected"):
                    self._reply(409)
                else:
                    persist(key, req["new"])
                    STORE[key] = req["new"]
                    self._reply(200)
            else:
                self._reply(405)

    do_GET = do_PUT = do_POST = _handle


if __name__ == "__main__":
    replay()
    server = http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    server.serve_forever()
