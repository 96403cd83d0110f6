"""The cheating front of infragym's wrapping probes: an HTTP proxy on the contract's PORT
in front of the task's own reference, which serves on an inner port.

Deployed as ``/srv/app/.probe/front.py`` beside the reference by the probe's ``start.sh``,
run by the hosts' ``/usr/bin/python3`` (standard library only). ``PROBE_MODE`` says how
it cheats:

- ``refuse-after-start``: proxies honestly for ``PROBE_REFUSE_AFTER_S`` seconds after
  the reference first answered on this host (the time is kept in /tmp, so a crash does
  not restart the clock), then answers 503 to everything;
- ``stale-cache``: keeps every 2xx answer to a GET, by path, and serves it forever; only
  a write to that path sent through this same host drops it;
- ``one-node``: forwards everything to the reference of the cluster's first host (the
  first entry of ``PEERS``, else the first cluster address of ``/etc/hosts``).

A reference that refuses the connection gives 503 (certainly not done); no answer, or a
broken one, gives 504 (outcome unknown), as a production proxy would.
"""

from __future__ import annotations

import http.client
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("refuse-after-start", "stale-cache", "one-node")
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
     "upgrade", "content-length", "host"}
)  # fmt: skip
FORWARD_TIMEOUT_S = 10.0
READY_FILE = ".infragym-probe-ready-at"  # in PROBE_STATE_DIR (default /tmp)
Answer = tuple[int, list[tuple[str, str]], bytes]


def first_host(peers: str, hosts_file: str) -> str:
    """The address of the cluster's first host: the first entry of ``PEERS``
    (``name=address`` or ``address``, an optional ``:port`` dropped), else the first
    line of ``/etc/hosts`` that is not a loopback address."""
    for item in (i.strip() for i in peers.split(",")):
        if item:
            address = item.split("=", 1)[-1]
            return address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    for line in hosts_file.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and not fields[0].startswith(("127.", "::1")):
            return fields[0]
    raise SystemExit("probe front: no PEERS and no cluster host in /etc/hosts")


class Front:
    """What the proxy does with each request, by mode (threads share one instance)."""

    def __init__(
        self, mode: str, upstream: str, port: int, refuse_after_s: float, state_dir: str = "/tmp"
    ) -> None:
        if mode not in MODES:
            raise SystemExit(f"probe front: PROBE_MODE must be one of {MODES}, not {mode!r}")
        self.mode, self.upstream, self.port = mode, upstream, port
        self.refuse_after_s = refuse_after_s
        self.cache: dict[str, Answer] = {}
        self.lock = threading.Lock()
        self.ready_file = os.path.join(state_dir, READY_FILE)
        self.ready_at = self._read_ready_at()

    def _read_ready_at(self) -> float | None:
        try:
            with open(self.ready_file, encoding="ascii") as f:
                return float(f.read())
        except (OSError, ValueError):
            return None

    def _mark_ready(self) -> None:
        with self.lock:
            if self.ready_at is None:
                self.ready_at = time.time()
                try:
                    with open(self.ready_file, "w", encoding="ascii") as f:
                        f.write(repr(self.ready_at))
                except OSError:
                    pass

    def refusing(self) -> bool:
        return (
            self.mode == "refuse-after-start"
            and self.ready_at is not None
            and time.time() - self.ready_at > self.refuse_after_s
        )

    def answer(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> Answer:
        if self.refusing():
            return 503, [], b"refused by the probe\n"
        if self.mode == "stale-cache":
            with self.lock:
                if method == "GET" and path in self.cache:
                    return self.cache[path]
                if method not in ("GET", "HEAD"):
                    self.cache.pop(path, None)  # a write through this host, and only then
        got = self.forward(method, path, headers, body)
        if got[0] < 500:
            self._mark_ready()
        if self.mode == "stale-cache" and method == "GET" and 200 <= got[0] < 300:
            with self.lock:
                self.cache.setdefault(path, got)
        return got

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> Answer:
        conn = http.client.HTTPConnection(self.upstream, self.port, timeout=FORWARD_TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=dict(headers))
            resp = conn.getresponse()
            data = resp.read()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            return resp.status, kept, data
        except ConnectionRefusedError:
            return 503, [], b"the reference refused the connection\n"
        except (OSError, http.client.HTTPException):
            return 504, [], b"no answer from the reference\n"
        finally:
            conn.close()


def handler(front: Front) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def proxy(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n or self.command not in ("GET", "HEAD") else None
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
            status, out_headers, data = front.answer(self.command, self.path, headers, body)
            self.send_response(status)
            for k, v in out_headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = proxy

    return Handler


def main() -> None:
    env = os.environ
    mode = env.get("PROBE_MODE", "")
    upstream = "127.0.0.1"
    if mode == "one-node":
        try:
            with open("/etc/hosts", encoding="utf-8") as f:
                hosts = f.read()
        except OSError:
            hosts = ""
        upstream = first_host(env.get("PEERS", ""), hosts)
    front = Front(
        mode,
        upstream,
        int(env["PROBE_INNER_PORT"]),
        float(env.get("PROBE_REFUSE_AFTER_S", "8")),
        env.get("PROBE_STATE_DIR", "/tmp"),
    )
    print(f"probe front: {mode} on :{env['PORT']} -> {upstream}:{front.port}", file=sys.stderr)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128  # the listen backlog: 5 by default
    ThreadingHTTPServer(("0.0.0.0", int(env["PORT"])), handler(front)).serve_forever()


if __name__ == "__main__":
    main()
