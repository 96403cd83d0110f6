"""Write haproxy.cfg for the load balancer: every app host listed in LIVE_APPS_FILE now
(one "name=address" per line), on APP_PORT, behind PORT."""

import os
import sys
from pathlib import Path

env = os.environ
out = Path(sys.argv[1])
live = [line.split("=", 1) for line in Path(env["LIVE_APPS_FILE"]).read_text().split() if line]
servers = "".join(f"    server {name} {addr}:{env['APP_PORT']} check\n" for name, addr in live)
(out / "haproxy.cfg").write_text(f"""global
    maxconn 4096

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 10s

frontend web
    bind :{env["PORT"]}
    default_backend apps

backend apps
    balance roundrobin
    option httpchk GET /health
{servers}""")
