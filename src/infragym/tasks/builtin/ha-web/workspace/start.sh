#!/bin/sh
# The grader runs `/bin/sh /srv/app/start.sh` on every host, in the foreground, with the
# environment the instructions describe (ROLE is "app" or "lb").
case "$ROLE" in
app)
    # the provided application: keep this
    exec /usr/bin/python3 /srv/app/app/server.py
    ;;
lb)
    echo "start.sh: the load balancer is not implemented: run haproxy and keepalived here (see README.md)" >&2
    exit 1
    ;;
esac
echo "start.sh: unknown ROLE '$ROLE'" >&2
exit 1
