#!/bin/sh
# naive: redis on the state host keeps the counts; the starter's load balancer (the live
# app hosts read once, at its start)
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
lb)
    mkdir -p /tmp/lb && /usr/bin/python3 /srv/app/lb/render.py /tmp/lb || exit 1
    exec /usr/sbin/haproxy -db -f /tmp/lb/haproxy.cfg
    ;;
state)
    exec /usr/bin/redis-server --bind 0.0.0.0 --port 6379 --protected-mode no \
        --save "" --appendonly no --dir "$DATA_DIR"
    ;;
esac
echo "unknown ROLE $ROLE" >&2
exit 1
