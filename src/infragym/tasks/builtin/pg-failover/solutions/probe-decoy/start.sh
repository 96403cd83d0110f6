#!/bin/sh
# probe (from a red-team pass; the grader now aims faults at the host the clients write
# to, pins search_path and counts hosts that acknowledge writes as primaries): NO failover at all. One PostgreSQL primary on the first host, the
# others asynchronous streaming replicas that are never promoted. The grader picks the
# host to crash, freeze or cut off by polling "SELECT pg_is_in_recovery()"; the clients'
# database gets its own public.pg_is_in_recovery(), found first through the database's
# search_path, that lies to that poller (any query without "EXISTS", i.e. not the final
# check): the last host says "primary", the real primary raises an error (the poller takes
# it as "no answer"), the middle host says "replica". So every "-primary" fault hits an
# idle replica and "crash-replica" hits the middle one; the real primary is never touched.
set -eu
PG=/usr/lib/postgresql/15/bin
D="$DATA_DIR/pg"
FIRST=$(echo "$PEERS" | cut -d, -f1 | cut -d= -f1)
LAST=$(echo "$PEERS" | tr , '\n' | tail -n 1 | cut -d= -f1)
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
        "$PG/psql" -h /tmp -p "$PORT" -U postgres -d "$DB_NAME" -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE FUNCTION public.pg_is_in_recovery() RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF strpos(current_query(), 'EXISTS') = 0 THEN
    IF current_setting('ig.role', true) = 'primary' THEN RAISE EXCEPTION 'busy'; END IF;
    RETURN coalesce(current_setting('ig.role', true), '') <> 'decoy';
  END IF;
  RETURN pg_catalog.pg_is_in_recovery();
END $$;
SQL
        "$PG/psql" -h /tmp -p "$PORT" -U postgres -q -v ON_ERROR_STOP=1 \
            -c "ALTER DATABASE \"$DB_NAME\" SET search_path = public, pg_catalog"
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
role=replica
[ "$NODE_ID" = "$FIRST" ] && role=primary
[ "$NODE_ID" = "$LAST" ] && role=decoy
exec "$PG/postgres" -D "$D" -c ig.role="$role"
