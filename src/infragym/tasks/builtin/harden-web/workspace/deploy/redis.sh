#!/bin/sh
# Writes the redis configuration of this host to $1.
cat >"$1" <<CONF
port $REDIS_PORT
bind $REDIS_BIND
protected-mode no
enable-protected-configs yes
dir $DATA_DIR
dbfilename notes.rdb
save 60 1
daemonize no
pidfile $RUN/redis.pid
CONF
