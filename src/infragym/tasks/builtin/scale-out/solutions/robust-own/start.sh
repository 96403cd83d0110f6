#!/bin/sh
# robust-own: the counts in a store of our own on the state host; the load balancer's
# slots filled from LIVE_APPS_FILE by lb/watch.sh
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
lb) exec /bin/bash /srv/app/lb/watch.sh ;;
state) exec /usr/bin/python3 /srv/app/store/server.py ;;
esac
echo "unknown ROLE $ROLE" >&2
exit 1
