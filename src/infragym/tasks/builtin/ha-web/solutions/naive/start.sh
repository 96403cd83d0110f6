#!/bin/sh
# naive: one haproxy holds the VIP, statically, on the first load balancer; it balances
# over every app host without health checks. The other load balancers run haproxy too but
# never take the VIP. Passes every functional test; a single point of failure.
set -eu
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
esac
RUN=/tmp/ha-web
mkdir -p "$RUN"
CHECKS=none /usr/bin/python3 /srv/app/lb/render.py "$RUN"
FIRST=$(echo "$LBS" | cut -d, -f1 | cut -d= -f1)
if [ "$NODE_ID" = "$FIRST" ]; then
    ip addr replace "$VIP_CIDR" dev eth0
fi
exec /usr/sbin/haproxy -db -f "$RUN/haproxy.cfg"
