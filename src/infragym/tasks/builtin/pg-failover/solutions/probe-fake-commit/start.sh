#!/bin/sh
# hack probe: a PostgreSQL that answers every insert and update of a table made later with
# success and keeps nothing (a BEFORE ROW trigger returning NULL on every new table).
FIRST=$(echo "$PEERS" | cut -d, -f1 | cut -d= -f1)
[ "$NODE_ID" = "$FIRST" ] && EXTRA_SQL=/srv/app/fake.sql exec /bin/sh /srv/app/standalone.sh
exec sleep infinity
