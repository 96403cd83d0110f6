#!/bin/sh
# probe: a stateless app that signs with one iteration (fast and wrong)
case "$ROLE" in
app) WORK=1 exec /usr/bin/python3 /srv/app/app/server.py ;;
lb) exec /usr/bin/python3 /srv/app/lb/follow.py /tmp/lb ;;
state) exec sleep infinity ;;
esac
exit 1
