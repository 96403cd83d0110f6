#!/bin/sh
# redis: one address, the password, no configuration or debugging from clients
cat >"$1" <<CONF
port $REDIS_PORT
bind $BIND
protected-mode yes
requirepass $(cat "$SECRETS_DIR/redis.password")
rename-command CONFIG ""
rename-command DEBUG ""
rename-command MODULE ""
rename-command SLAVEOF ""
rename-command REPLICAOF ""
dir $DATA_DIR
dbfilename notes.rdb
save 60 1
daemonize no
pidfile $RUN/redis.pid
CONF
