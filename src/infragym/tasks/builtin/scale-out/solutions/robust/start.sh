#!/bin/sh
# robust: redis on the state host keeps the counts (the app hosts are stateless); the
# load balancer follows LIVE_APPS_FILE through haproxy's runtime API (lb/follow.py)
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
lb) exec /usr/bin/python3 /srv/app/lb/follow.py /tmp/lb ;;
state)
    exec /usr/bin/redis-server --bind 0.0.0.0 --port 6379 --protected-mode no \
        --save "" --appendonly no --dir "$DATA_DIR"
    ;;
esac
echo "unknown ROLE $ROLE" >&2
exit 1
