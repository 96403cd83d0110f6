#!/bin/sh
# probe: the robust tier with health checks that run but never take a server out
set -u
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
lb) ;;
*) echo "unknown ROLE $ROLE" >&2; exit 1 ;;
esac
RUN=/tmp/ha-web
mkdir -p "$RUN"
# a crash leaves this host's files and addresses: stale pid files would make keepalived
# believe it is running already, a stale VIP would be held twice
rm -f "$RUN"/*.pid
ip addr del "$VIP_CIDR" dev eth0 2>/dev/null
CHECKS=never-eject /usr/bin/python3 /srv/app/lb/render.py "$RUN" || exit 1
echo 1 > "$RUN/haproxy-down"
# haproxy, restarted whenever it exits; monitor.py writes haproxy-down, 1 while haproxy
# is down or sees no backend up (this host cut off), which keepalived tracks (scripts
# cannot run here: they would need to change groups) to leave the VIP to a peer
(
    while :; do
        /usr/sbin/haproxy -db -f "$RUN/haproxy.cfg" &
        wait $!
        sleep 0.2
    done
) &
/usr/bin/python3 /srv/app/lb/monitor.py "$RUN" &
exec /usr/sbin/keepalived -n -l -D -f "$RUN/keepalived.conf" -p "$RUN/keepalived.pid" \
    -r "$RUN/vrrp.pid" -c "$RUN/checkers.pid"
