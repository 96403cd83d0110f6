#!/bin/sh
# Hardened: TLS 1.2+ with forward-secret AEAD suites only, nothing but nginx on the network
# (redis with its password: on loopback, or on the store host's address), secrets owner-only,
# the application wrapped by app/hardened.py on loopback.
set -eu
umask 077
APP_DIR=$(cd "$(dirname "$0")/.." && pwd)
RUN=/tmp/notes
mkdir -p "$RUN"
chmod 700 "$RUN"
[ -f "$SECRETS_DIR/tls.crt" ] || /bin/sh "$APP_DIR/deploy/dev-secrets.sh"
chmod 600 "$SECRETS_DIR"/*
export APP_DIR RUN

. "$APP_DIR/deploy/hosts.sh"

if [ "$NODE_ID" = "$STORE" ]; then
    if [ "$WEB" = "$STORE" ]; then BIND=127.0.0.1; else BIND=$NODE_ADDRESS; fi
    BIND=$BIND /bin/sh "$APP_DIR/deploy/redis-hardened.sh" "$RUN/redis.conf"
    /usr/bin/redis-server "$RUN/redis.conf" &
fi

if [ "$NODE_ID" = "$WEB" ]; then
    if [ "$WEB" = "$STORE" ]; then REDIS_HOST=127.0.0.1; else REDIS_HOST=$STORE_ADDRESS; fi
    for i in $(seq 1 20); do
        python3 -c "import socket; socket.create_connection(('$REDIS_HOST', $REDIS_PORT), 1)" 2>/dev/null && break
        sleep 0.25
    done
    env -u SESSION_SALT REDIS_HOST="$REDIS_HOST" REDIS_AUTH_FILE="$SECRETS_DIR/redis.password" \
        USERS_FILE="$SECRETS_DIR/users.txt" SECRET_FILE="$SECRETS_DIR/secret.key" \
        ADMIN_TOKEN_FILE="$SECRETS_DIR/admin.token" DEBUG=0 TRACEBACKS=0 \
        /usr/bin/python3 "$APP_DIR/app/hardened.py" &
    for i in $(seq 1 40); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $APP_PORT), 1)" 2>/dev/null && break
        sleep 0.25
    done
    /bin/sh "$APP_DIR/deploy/nginx-tls.sh" "$RUN/nginx.conf"
    /usr/sbin/nginx -c "$RUN/nginx.conf" -e "$RUN/nginx-error.log" &
fi
wait
