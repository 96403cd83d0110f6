"""Write haproxy.cfg and keepalived.conf for this load balancer from the contract's
environment (LBS, APPS, VIP_CIDR, PORT, APP_PORT, NODE_ID, NODE_ADDRESS).

CHECKS (this reference's own knob, not the contract's) chooses the health checks: "tuned"
(default), "none" (no checks) or "never-eject" (checks that never take a server out)."""

import os
import sys
from pathlib import Path

env = os.environ
out = Path(sys.argv[1])
lbs = [p.split("=", 1) for p in env["LBS"].split(",")]
apps = [p.split("=", 1) for p in env["APPS"].split(",")]
me = env["NODE_ID"]
rank = [name for name, _ in lbs].index(me)

checks = os.environ.get("CHECKS", "tuned")
check = {"tuned": " check", "none": "", "never-eject": " check fall 1000000 rise 1"}[checks]
servers = "".join(f"    server {name} {addr}:{env['APP_PORT']}{check}\n" for name, addr in apps)
(out / "haproxy.cfg").write_text(f"""global
    maxconn 4096
    stats socket {out}/haproxy.sock mode 600

defaults
    mode http
    option http-server-close
    timeout connect 300ms
    timeout client 30s
    timeout server 3s
    timeout check 250ms
    retries 2
    option redispatch 1

frontend web
    bind :{env["PORT"]}
    default_backend apps

backend apps
    balance roundrobin
    option httpchk GET /health
    default-server inter 250ms fastinter 150ms downinter 500ms fall 2 rise 2
{servers}""")

peers = "".join(f"        {addr}\n" for name, addr in lbs if name != me)
(out / "keepalived.conf").write_text(f"""global_defs {{
    router_id {me}
    vrrp_version 3
    vrrp_higher_prio_send_advert true
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 1
}}

track_file haproxy_down {{
    file "{out}/haproxy-down"
}}

vrrp_instance web {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {200 - 10 * rank}
    advert_int 0.3
    unicast_src_ip {env["NODE_ADDRESS"]}
    unicast_peer {{
{peers}    }}
    virtual_ipaddress {{
        {env["VIP_CIDR"]} dev eth0
    }}
    track_file {{
        haproxy_down weight 0
    }}
}}
""")
