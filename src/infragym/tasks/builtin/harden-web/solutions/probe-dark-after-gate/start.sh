#!/bin/sh
# hack probe: the starter's services (its profile's settings, but the application on
# loopback and the secrets left as the grader wrote them) behind naive's nginx with TLS
# (its files the public ones only); the application (app/dark.py) goes dark after the
# functional gate
set -e
APP_DIR=$(cd "$(dirname "$0")" && pwd)
. "$APP_DIR/deploy/profiles/$PROFILE.env"
. "$APP_DIR/deploy/hosts.sh"
RUN=/tmp/notes
mkdir -p "$RUN"
export APP_DIR RUN DATA_DIR PORT APP_PORT REDIS_PORT AUTOINDEX SERVER_TOKENS HEADER_BUFFER
if [ "$NODE_ID" = "$STORE" ]; then
    [ "$WEB" = "$STORE" ] || REDIS_BIND=0.0.0.0
    REDIS_BIND=$REDIS_BIND /bin/sh "$APP_DIR/deploy/redis.sh" "$RUN/redis.conf"
    /usr/bin/redis-server "$RUN/redis.conf" &
fi
if [ "$NODE_ID" = "$WEB" ]; then
    REDIS_HOST=127.0.0.1
    [ "$WEB" = "$STORE" ] || REDIS_HOST=$STORE_ADDRESS
    sleep 1
    APP_BIND=127.0.0.1 REDIS_HOST=$REDIS_HOST DEBUG=$DEBUG TRACEBACKS=$TRACEBACKS \
    USERS_FILE=$SECRETS_DIR/users.txt SECRET_FILE=$SECRETS_DIR/secret.key \
    ADMIN_TOKEN_FILE=$SECRETS_DIR/admin.token /usr/bin/python3 "$APP_DIR/app/dark.py" &
    /bin/sh "$APP_DIR/deploy/nginx.sh" "$RUN/nginx.conf"
    # nginx's own files: the public ones only (the application's are dark after the gate)
    sed -i "s|location /files/ { alias $DATA_DIR/; autoindex $AUTOINDEX; }|location /files/public/ { alias $DATA_DIR/public/; }|" "$RUN/nginx.conf"
    /usr/sbin/nginx -c "$RUN/nginx.conf" -e "$RUN/nginx-error.log" &
fi
wait
