#!/bin/sh
# One PostgreSQL primary on this host, with no replica; $EXTRA_SQL (a file) runs in the
# clients' database after it is made.
set -eu
PG=/usr/lib/postgresql/15/bin
D="$DATA_DIR/pg"
if [ ! -f "$D/PG_VERSION" ]; then
    "$PG/initdb" -D "$D" -U postgres --auth-local=trust >/dev/null
    cat >>"$D/postgresql.conf" <<CONF
listen_addresses = '*'
port = $PORT
unix_socket_directories = '/tmp'
shared_buffers = 32MB
max_wal_size = 96MB
CONF
    printf 'local all all trust\nhost all all samenet scram-sha-256\n' >"$D/pg_hba.conf"
    "$PG/pg_ctl" -D "$D" -w -o "-c listen_addresses='' -c port=$PORT" start >/dev/null
    "$PG/psql" -h /tmp -p "$PORT" -U postgres -q -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE "$DB_USER" LOGIN PASSWORD '$DB_PASSWORD';
CREATE DATABASE "$DB_NAME" OWNER "$DB_USER";
SQL
    if [ -n "${EXTRA_SQL:-}" ]; then
        "$PG/psql" -h /tmp -p "$PORT" -U postgres -d "$DB_NAME" -q -v ON_ERROR_STOP=1 -f "$EXTRA_SQL"
    fi
    "$PG/pg_ctl" -D "$D" -w stop >/dev/null
fi
rm -f "$D/postmaster.pid" "/tmp/.s.PGSQL.$PORT" "/tmp/.s.PGSQL.$PORT.lock"  # left by a crash
exec "$PG/postgres" -D "$D"
