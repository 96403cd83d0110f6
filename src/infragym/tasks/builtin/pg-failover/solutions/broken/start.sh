#!/bin/sh
# broken: PostgreSQL is initialised but started on a unix socket only: no client ever
# connects over the network.
set -eu
PG=/usr/lib/postgresql/15/bin
D="$DATA_DIR/pg"
[ -f "$D/PG_VERSION" ] || "$PG/initdb" -D "$D" -U postgres --auth=trust >/dev/null
rm -f "$D/postmaster.pid"
exec "$PG/postgres" -D "$D" -c listen_addresses='' -c unix_socket_directories=/tmp -c port="$PORT"
