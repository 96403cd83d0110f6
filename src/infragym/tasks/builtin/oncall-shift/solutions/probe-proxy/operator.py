"""Forgery probe (found by review): the new nodes never run kvnode and the damaged node
is never restored: each is a 40-line HTTP proxy (started with host_bash background=true)
forwarding every request (/kv, /internal, /admin/status, /admin/dump) to a real old node,
failing over to the next.

Orientation, disk and the postmortem are robust's. Capacity: `kvctl sync` on the old nodes,
then a proxy on each new host (no membership change, no restart). Host: a proxy on the
crashed host (its damaged replica.log stays as it is). Change: stop, migrate, start, sync
on the real nodes only; the proxies relay their /admin/status.

When the grader believed whatever answered on the port, this earned about robust's score
(capacity, host and change 1.0 from relayed answers) while the "5-node" cluster had 2-3
real replicas. The grader now asks only the node the service tool runs (the listening
socket's owner, read from the kernel) and the proxies stop with the shift, before the
audit: the forged phases earn nothing (band in task.toml)."""

from __future__ import annotations

import asyncio
from typing import Any

import shift_robust
from oncall_ops import KVCTL, hosts

PROXY = r"""
import http.client, http.server, sys
UP = sys.argv[1:]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def fwd(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        for up in UP:
            try:
                c = http.client.HTTPConnection(up, 8080, timeout=2)
                c.request(self.command, self.path, body=body)
                r = c.getresponse()
                data = r.read()
                c.close()
            except OSError:
                continue
            self.send_response(r.status)
            self.send_header("Content-Type", r.getheader("Content-Type") or "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_PUT = do_POST = do_DELETE = fwd
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
S(("0.0.0.0", 8080), H).serve_forever()
"""


async def start_proxy(shift: Any, host: str, upstreams: list[str]) -> None:
    await shift.bash(host, f"mkdir -p /tmp/px && cat > /tmp/px/proxy.py <<'EOF'\n{PROXY}\nEOF")
    await shift.call(
        "host_bash", host=host, background=True,
        command=f"exec python3 /tmp/px/proxy.py {' '.join(upstreams)}",
    )  # fmt: skip
    out = await shift.bash(host, "sleep 1; curl -s -m 2 http://localhost:8080/admin/status")
    if '"node"' not in out:
        raise RuntimeError(f"the proxy on {host} does not relay: {out}")


async def dead_host(shift: Any, every: list[str]) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 25.0
    await shift.bash(every[-1], "sleep 5")
    while True:
        for h in every:
            code = await shift.bash(
                h, "curl -s -m 1 -o /dev/null -w '%{http_code}' http://localhost:8080/admin/status"
            )
            if "200" not in code.splitlines()[0]:
                return h
        if loop.time() > deadline:
            raise RuntimeError("no host went down")
        await shift.bash(every[-1], "sleep 2")


async def operate(shift: Any) -> None:
    every = hosts(shift)
    old, new = every[:3], every[3:]
    await shift_robust.orientation(shift, old)
    notes = await shift_robust.disk(shift, old)

    for h in old:
        await shift.bash(h, f"{KVCTL} sync")
    for h in new:
        await start_proxy(shift, h, old)
    await shift.end(f"{' and '.join(new)} serve and hold the data")

    victim = await dead_host(shift, every)
    real = [h for h in old if h != victim]
    await start_proxy(shift, victim, real)
    await shift.end(f"{victim} serves again with every key")

    for h in real:
        await shift.service(h, "stop")
        await shift.bash(h, f"{KVCTL} migrate && echo 2 > /srv/etc/kv/version")
        await shift.service(h, "start")
        await shift.bash(h, f"{KVCTL} sync")
        await shift_robust.watch(shift, h)
    await shift.end("release 2 on every node, one at a time")

    await shift.end(shift_robust.postmortem(notes))
