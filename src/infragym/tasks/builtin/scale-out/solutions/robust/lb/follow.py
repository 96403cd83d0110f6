"""The load balancer: haproxy with a server slot for every app host of APPS, each in
maintenance until LIVE_APPS_FILE lists it, taken in and out of rotation through haproxy's
runtime API as the file changes (polled every 0.1 s). Taking a host out is a drain: no
new request goes to it, requests in flight finish. haproxy's retries redispatch a request
whose connection failed (a host that died before the grader announced it).

ONE_HOST=1 (this reference's knob for a probe, not the contract's): only the first live
host is ever in rotation."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

env = os.environ
run = Path(sys.argv[1])
run.mkdir(parents=True, exist_ok=True)
sock_path = run / "haproxy.sock"
apps = [p.split("=", 1) for p in env["APPS"].split(",")]
servers = "".join(f"    server {name} {addr}:{env['APP_PORT']} disabled\n" for name, addr in apps)
(run / "haproxy.cfg").write_text(f"""global
    maxconn 4096
    stats socket {sock_path} mode 600 level admin

defaults
    mode http
    timeout connect 500ms
    timeout client 30s
    timeout server 10s
    timeout check 500ms
    retries 3
    option redispatch 1

frontend web
    bind :{env["PORT"]}
    default_backend apps

backend apps
    balance leastconn
    option httpchk GET /health
    default-server check inter 1s fall 2 rise 1
{servers}""")


def admin(command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2.0)
        s.connect(str(sock_path))
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    return out.decode()


def live() -> list[str]:
    try:
        text = Path(env["LIVE_APPS_FILE"]).read_text()
    except OSError:
        return []
    names = [line.split("=", 1)[0] for line in text.split() if "=" in line]
    return names[:1] if env.get("ONE_HOST") == "1" else names


haproxy = subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", str(run / "haproxy.cfg")])
deadline = time.monotonic() + 10
while not sock_path.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
current: set[str] = set()
while haproxy.poll() is None:
    wanted = set(live())
    for name in sorted(wanted - current):
        admin(f"set server apps/{name} state ready")
        admin(f"set server apps/{name} health up")
    for name in sorted(current - wanted):
        admin(f"set server apps/{name} state maint")
    current = wanted
    time.sleep(0.1)
sys.exit(haproxy.returncode)
