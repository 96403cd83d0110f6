#!/bin/sh
# robust: naive's app hosts and redis (the app hosts are stateless); the load balancer
# follows LIVE_APPS_FILE through haproxy's runtime API (lb/follow.py)
case "$ROLE" in
app | state) exec /bin/sh "/srv/app/bin/$ROLE.sh" ;;
lb) exec /usr/bin/python3 /srv/app/lb/follow.py /tmp/lb ;;
esac
echo "unknown ROLE $ROLE" >&2
exit 1
