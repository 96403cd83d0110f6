#!/bin/sh
# probe: robust with every request sent to one app host (the first live one)
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
lb) ONE_HOST=1 exec /usr/bin/python3 /srv/app/lb/follow.py /tmp/lb ;;
state)
    exec /usr/bin/redis-server --bind 0.0.0.0 --port 6379 --protected-mode no \
        --save "" --appendonly no --dir "$DATA_DIR"
    ;;
esac
exit 1
