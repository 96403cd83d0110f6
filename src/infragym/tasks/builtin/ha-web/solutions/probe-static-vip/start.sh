#!/bin/sh
# probe: tuned haproxy on every load balancer, and the VIP configured statically on all of
# them at once (no VRRP): a permanent split brain.
set -eu
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
esac
RUN=/tmp/ha-web
mkdir -p "$RUN"
/usr/bin/python3 /srv/app/lb/render.py "$RUN"
ip addr replace "$VIP_CIDR" dev eth0
exec /usr/sbin/haproxy -db -f "$RUN/haproxy.cfg"
