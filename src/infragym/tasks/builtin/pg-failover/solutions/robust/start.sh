#!/bin/sh
# robust: Patroni 3.0 on a three-member etcd 3.4 cluster co-located on the database hosts.
# synchronous_mode_strict: a commit is acknowledged only once a synchronous standby has it
# (also right after a promotion, before a new standby is chosen), and Patroni promotes only
# that standby, so a failover loses nothing. Patroni talks etcd's v2 API: it updates the
# leader key by compare-and-swap, while 3.0.2's etcd3 client rewrites the key with a fresh
# lease when an old leader wakes from a pause (it then takes the cluster back and the
# commits of the new primary are rewound away). A primary that loses the
# leader key (cut off, or back from a pause) demotes itself, and its commits wait for a
# standby that has left it, so it acknowledges nothing meanwhile. A crashed primary comes
# back as a replica (pg_rewind, or a fresh copy when its timeline diverged).
set -eu
D="$DATA_DIR"
mkdir -p "$D/etcd" "$D/pg" /tmp/patroni
chmod 700 "$D/pg"
# a crash leaves the postmaster's pid file and its socket's lock file (/tmp stays too);
# process ids restart from 1 here, so the pid they name may be alive again, and
# PostgreSQL would take it for another postmaster and never start
rm -f "$D/pg/postmaster.pid" "/tmp/.s.PGSQL.$PORT" "/tmp/.s.PGSQL.$PORT.lock"

cluster=""
for peer in $(echo "$PEERS" | tr , ' '); do
    name=${peer%%=*} addr=${peer#*=}
    cluster="${cluster:+$cluster,}$name=http://$addr:2380"
done
state=new
[ -d "$D/etcd/member" ] && state=existing
/usr/bin/etcd --name "$NODE_ID" --data-dir "$D/etcd" \
    --listen-peer-urls "http://$NODE_ADDRESS:2380" \
    --initial-advertise-peer-urls "http://$NODE_ADDRESS:2380" \
    --listen-client-urls "http://$NODE_ADDRESS:2379,http://127.0.0.1:2379" \
    --advertise-client-urls "http://$NODE_ADDRESS:2379" \
    --initial-cluster "$cluster" --initial-cluster-state "$state" \
    --initial-cluster-token pg-failover \
    --heartbeat-interval 100 --election-timeout 1000 \
    --quota-backend-bytes 67108864 --snapshot-count 5000 --enable-v2=true \
    --logger zap --log-level warn >>/srv/logs/etcd.log 2>&1 &

# leader key TTL from the RTO: detection (ttl), the standbys' look at each other and the
# promotion fit in RTO_S
ttl=$(python3 -c "import sys; print(max(4, int(float(sys.argv[1])) // 2))" "$RTO_S")
cat >/tmp/patroni/post_bootstrap.sh <<EOS
#!/bin/sh
/usr/lib/postgresql/15/bin/psql "\$1" -q -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE "$DB_USER" LOGIN PASSWORD '$DB_PASSWORD';
CREATE DATABASE "$DB_NAME" OWNER "$DB_USER";
SQL
EOS
chmod 755 /tmp/patroni/post_bootstrap.sh
cat >/tmp/patroni/patroni.yml <<EOF2
scope: pg-failover
name: $NODE_ID
log:
  level: INFO
restapi:
  listen: $NODE_ADDRESS:8008
  connect_address: $NODE_ADDRESS:8008
etcd:
  host: $NODE_ADDRESS:2379  # its own member first: on a frozen or cut-off host it is as
                            # stuck as Patroni; elsewhere it is in the majority
watchdog:
  mode: off
bootstrap:
  dcs:
    ttl: $ttl
    loop_wait: 1
    retry_timeout: 2
    # only the synchronous standby may be promoted, and it has every acknowledged commit:
    # a lag limit of 0 would rule it out too whenever the primary wrote any WAL after its
    # last commit (a checkpoint record), and nothing would ever be promoted
    maximum_lag_on_failover: 16777216
    failsafe_mode: true
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 100
        shared_buffers: 32MB
        # the disk is memory: WAL kept small (replicas hold slots, so keeping more is
        # only a margin)
        min_wal_size: 32MB
        max_wal_size: 64MB
        wal_keep_size: 32MB
        # a primary cut off from its standbys and told to stop waits this long for them
        # to confirm the last WAL (60 s by default: Patroni's demotion waits that long)
        wal_sender_timeout: 10s
        wal_level: replica
        wal_log_hints: 'on'
        hot_standby: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        # a standby waiting for WAL looks at a promotion request this often (5 s by
        # default: as long again as the failure detection)
        wal_retrieve_retry_interval: 250ms
  initdb:
    - encoding: UTF8
  post_bootstrap: /tmp/patroni/post_bootstrap.sh
postgresql:
  listen: '*:$PORT'
  connect_address: $NODE_ADDRESS:$PORT
  data_dir: $D/pg
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /tmp/patroni/pgpass
  use_unix_socket: true
  basebackup:
    - checkpoint: fast
  use_pg_rewind: true
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: postgres
      password: '$DB_PASSWORD'
    replication:
      username: replicator
      password: '$DB_PASSWORD'
  parameters:
    unix_socket_directories: /tmp
  pg_hba:
    - local all all trust
    - host all all samenet scram-sha-256
    - host replication replicator samenet scram-sha-256
EOF2
exec /usr/bin/patroni /tmp/patroni/patroni.yml
