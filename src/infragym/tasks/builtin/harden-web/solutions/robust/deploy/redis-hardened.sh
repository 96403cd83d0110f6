#!/bin/sh
# redis: the deployment's configuration (deploy/redis.sh), then, overriding it, one address,
# the password, no configuration or debugging from clients
REDIS_BIND=$BIND /bin/sh "$(dirname "$0")/redis.sh" "$1"
cat >>"$1" <<CONF
protected-mode yes
enable-protected-configs no
requirepass $(cat "$SECRETS_DIR/redis.password")
rename-command CONFIG ""
rename-command DEBUG ""
rename-command MODULE ""
rename-command SLAVEOF ""
rename-command REPLICAOF ""
CONF
