#!/bin/sh
# naive: asynchronous streaming replication from the first host, and a watcher on the
# second that promotes it when the primary stops answering. Passes every functional test;
# a commit the primary acknowledged may never reach the replica that gets promoted, and a
# primary that comes back starts as a primary again (split brain).
set -eu
PG=/usr/lib/postgresql/15/bin
D="$DATA_DIR/pg"
FIRST=$(echo "$PEERS" | cut -d, -f1 | cut -d= -f1)
SECOND=$(echo "$PEERS" | cut -d, -f2 | cut -d= -f1)
export PGPASSWORD="$DB_PASSWORD"
settings() {
    cat >>"$D/postgresql.conf" <<CONF
listen_addresses = '*'
port = $PORT
unix_socket_directories = '/tmp'
shared_buffers = 32MB
max_wal_size = 96MB
wal_keep_size = 64MB
hot_standby = on
CONF
    cat >"$D/pg_hba.conf" <<HBA
local all all trust
host all all samenet scram-sha-256
host replication all samenet scram-sha-256
HBA
}
if [ ! -f "$D/PG_VERSION" ]; then
    if [ "$NODE_ID" = "$FIRST" ]; then
        "$PG/initdb" -D "$D" -U postgres --auth-local=trust >/dev/null
        settings
        "$PG/pg_ctl" -D "$D" -w -o "-c listen_addresses='' -c unix_socket_directories=/tmp -c port=$PORT" start >/dev/null
        "$PG/psql" -h /tmp -p "$PORT" -U postgres -q -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE "$DB_USER" LOGIN REPLICATION PASSWORD '$DB_PASSWORD';
CREATE DATABASE "$DB_NAME" OWNER "$DB_USER";
SQL
        "$PG/pg_ctl" -D "$D" -w stop >/dev/null
    else
        rm -rf "$D.tmp"
        until "$PG/pg_basebackup" -h "$FIRST" -p "$PORT" -U "$DB_USER" -D "$D.tmp" -R -X stream -c fast >/dev/null 2>&1; do
            rm -rf "$D.tmp"; sleep 1
        done
        mv "$D.tmp" "$D"
    fi
fi
rm -f "$D/postmaster.pid" "/tmp/.s.PGSQL.$PORT" "/tmp/.s.PGSQL.$PORT.lock"  # left by a crash
if [ "$NODE_ID" = "$SECOND" ]; then
    (
        misses=0
        while sleep 1; do
            if "$PG/pg_isready" -q -h "$FIRST" -p "$PORT" -t 1; then misses=0; else misses=$((misses + 1)); fi
            if [ "$misses" -ge 3 ] && [ -f "$D/standby.signal" ]; then
                "$PG/pg_ctl" -D "$D" promote >/dev/null 2>&1 || true
            fi
        done
    ) &
fi
exec "$PG/postgres" -D "$D"
