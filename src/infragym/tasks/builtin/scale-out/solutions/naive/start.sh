#!/bin/sh
# naive: redis on the state host keeps the counts; the starter's load balancer (the live
# app hosts read once, at its start)
case "$ROLE" in
app | state) exec /bin/sh "/srv/app/bin/$ROLE.sh" ;;
lb)
    mkdir -p /tmp/lb && /usr/bin/python3 /srv/app/lb/render.py /tmp/lb || exit 1
    exec /usr/sbin/haproxy -db -f /tmp/lb/haproxy.cfg
    ;;
esac
echo "unknown ROLE $ROLE" >&2
exit 1
