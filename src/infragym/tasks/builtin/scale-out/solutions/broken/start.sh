#!/bin/sh
# broken: the app hosts expect redis on the state host, and nothing starts it
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
lb)
    mkdir -p /tmp/lb && /usr/bin/python3 /srv/app/lb/render.py /tmp/lb || exit 1
    exec /usr/sbin/haproxy -db -f /tmp/lb/haproxy.cfg
    ;;
state) exec sleep infinity ;;
esac
exit 1
