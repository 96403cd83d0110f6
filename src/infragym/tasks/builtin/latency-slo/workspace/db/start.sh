#!/bin/sh
# PostgreSQL 15 on the db host: a fresh cluster on the data disk, the schema and the
# shop's data (schema.sql, seed.sql, migrations/), then the server in the foreground.
set -eu
PG=/usr/lib/postgresql/15/bin
D="$DATA_DIR/pg"
if [ ! -f "$D/PG_VERSION" ]; then
    rm -rf "$D"
    "$PG/initdb" -D "$D" -U postgres --auth-local=trust >/dev/null
    cat >>"$D/postgresql.conf" <<CONF
listen_addresses = '*'
port = $DB_PORT
unix_socket_directories = '/tmp'
shared_buffers = 64MB
max_connections = 100
fsync = off
CONF
    cat >"$D/pg_hba.conf" <<HBA
local all all trust
host all all samenet scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
HBA
    "$PG/pg_ctl" -D "$D" -w -o "-c listen_addresses='' -c port=$DB_PORT" start >/dev/null
    "$PG/psql" -h /tmp -p "$DB_PORT" -U postgres -q -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE "$DB_USER" LOGIN PASSWORD '$DB_PASSWORD';
CREATE DATABASE "$DB_NAME" OWNER "$DB_USER";
SQL
    # the schema, the data, then any migrations (db/migrations/*.sql, in name order)
    for f in /srv/app/db/schema.sql /srv/app/db/seed.sql /srv/app/db/migrations/*.sql; do
        [ -f "$f" ] || continue
        "$PG/psql" -h /tmp -p "$DB_PORT" -U "$DB_USER" -d "$DB_NAME" -q -v ON_ERROR_STOP=1 \
            -v users="$USERS" -v orders="$ORDERS" -f "$f"
    done
    "$PG/pg_ctl" -D "$D" -w stop >/dev/null
fi
rm -f "$D/postmaster.pid"
exec "$PG/postgres" -D "$D"
