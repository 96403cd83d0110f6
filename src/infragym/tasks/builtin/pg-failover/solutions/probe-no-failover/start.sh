#!/bin/sh
# probe (from a red-team pass; the grader now counts no write answered by a host the fault
# took away as a recovery): NO failover at all. The first host is the only primary
# ever; the others are asynchronous streaming replicas that are never promoted (the naive
# tier without its watcher). Loses nothing and never has two primaries, but writes stop
# whenever the first host crashes or freezes. Cut off from the other hosts, it goes on
# acknowledging writes the clients send it, kept on it alone: the grader's isolate-primary
# window counts that as a failover in 0 s.
set -eu
PG=/usr/lib/postgresql/15/bin
D="$DATA_DIR/pg"
FIRST=$(echo "$PEERS" | cut -d, -f1 | cut -d= -f1)
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
exec "$PG/postgres" -D "$D"
