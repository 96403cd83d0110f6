#!/bin/sh
# probe (from a red-team pass; the grader now aims faults at the host the clients write
# to, pins search_path and counts hosts that acknowledge writes as primaries): NO failover, and no lie inside PostgreSQL (pg_catalog's own
# pg_is_in_recovery() answers every query). The second host is the only primary ever; the
# third streams from it asynchronously and is never promoted. The first host is a replica
# of the second too, except while the grader's poller ("SELECT pg_is_in_recovery()" on
# every host) runs, i.e. during the load: then it swaps its standby for a decoy, an
# independent PostgreSQL that is not in recovery (so the poller names it primary, first
# in host order: every "-primary" fault hits it) and has default_transaction_read_only on
# (so libpq's target_session_attrs=read-write skips it and no client writes there). On the
# real primary a sidecar ends the poller's session every 2 s: a poll without its answer
# breaks every run of "two primaries" long before RTO_S. When the poller has gone (the
# load is over) the first host is a replica again for the final check.
set -u
PG=/usr/lib/postgresql/15/bin
D="$DATA_DIR/pg"
DECOY="$DATA_DIR/decoy"
MODE="$DATA_DIR/mode"
FIRST=$(echo "$PEERS" | cut -d, -f1 | cut -d= -f1)
SECOND=$(echo "$PEERS" | cut -d, -f2 | cut -d= -f1)
export PGPASSWORD="$DB_PASSWORD"
POLLER="query ~ '^SELECT (pg_catalog[.])?pg_is_in_recovery[(][)] *\$'"
q() { "$PG/psql" -h /tmp -p "$PORT" -U postgres -d postgres -Atq -c "$1" 2>/dev/null; }
settings() {  # $1: data directory
    cat >>"$1/postgresql.conf" <<CONF
listen_addresses = '*'
port = $PORT
unix_socket_directories = '/tmp'
shared_buffers = 32MB
max_wal_size = 96MB
wal_keep_size = 64MB
hot_standby = on
CONF
    cat >"$1/pg_hba.conf" <<HBA
local all all trust
host all all samenet scram-sha-256
host replication all samenet scram-sha-256
HBA
}
fresh() {  # $1: data directory: a new cluster with the clients' role and database
    "$PG/initdb" -D "$1" -U postgres --auth-local=trust >/dev/null
    settings "$1"
    "$PG/pg_ctl" -D "$1" -w -o "-c listen_addresses='' -c unix_socket_directories=/tmp -c port=$PORT" start >/dev/null
    "$PG/psql" -h /tmp -p "$PORT" -U postgres -q -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE "$DB_USER" LOGIN REPLICATION PASSWORD '$DB_PASSWORD';
CREATE DATABASE "$DB_NAME" OWNER "$DB_USER";
SQL
    "$PG/pg_ctl" -D "$1" -w stop >/dev/null
}
unstale() { rm -f "$1/postmaster.pid" "/tmp/.s.PGSQL.$PORT" "/tmp/.s.PGSQL.$PORT.lock"; }

if [ "$NODE_ID" = "$SECOND" ]; then
    [ -f "$D/PG_VERSION" ] || fresh "$D"
    unstale "$D"
    (
        while sleep 2; do
            q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE $POLLER" >/dev/null
        done
    ) &
    exec "$PG/postgres" -D "$D"
fi
if [ "$NODE_ID" = "$FIRST" ] && [ ! -f "$DECOY/PG_VERSION" ]; then
    fresh "$DECOY"
    echo "default_transaction_read_only = on" >>"$DECOY/postgresql.conf"
fi
if [ ! -f "$D/PG_VERSION" ]; then
    rm -rf "$D.tmp"
    until "$PG/pg_basebackup" -h "$SECOND" -p "$PORT" -U "$DB_USER" -D "$D.tmp" -R -X stream -c fast >/dev/null 2>&1; do
        rm -rf "$D.tmp"; sleep 1
    done
    mv "$D.tmp" "$D"
fi
if [ "$NODE_ID" != "$FIRST" ]; then
    unstale "$D"
    exec "$PG/postgres" -D "$D"
fi

# the first host: a replica, or the decoy while the poller runs
mode=replica
[ -f "$MODE" ] && mode=$(cat "$MODE")
pid=""
run() {  # start PostgreSQL in $mode
    if [ "$mode" = decoy ]; then dir=$DECOY; else dir=$D; fi
    unstale "$dir"
    "$PG/postgres" -D "$dir" &
    pid=$!
    echo "$mode" >"$MODE"
}
swap() {  # $1: the other mode
    kill -INT "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    mode=$1
    run
}
run
idle=0
while sleep 0.3; do
    if ! kill -0 "$pid" 2>/dev/null; then run; continue; fi
    if [ "$mode" = replica ]; then
        n=$(q "SELECT count(*) FROM pg_stat_activity WHERE $POLLER")
        [ "${n:-0}" -gt 0 ] && { swap decoy; idle=0; }
    else
        n=$(q "SELECT count(*) FROM pg_stat_activity WHERE $POLLER")
        if [ "${n:-1}" = 0 ]; then idle=$((idle + 1)); else idle=0; fi
        [ "$idle" -ge 13 ] && { swap replica; idle=0; }
    fi
done
