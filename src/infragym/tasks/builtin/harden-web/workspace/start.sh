#!/bin/sh
# The grader runs `/bin/sh /srv/app/start.sh` on every host, in the foreground, with the
# environment the instructions describe. The first host of PEERS runs the web front (nginx
# and the application); redis runs on the second host if there is one, else on the first.
set -e
APP_DIR=$(cd "$(dirname "$0")" && pwd)
. "$APP_DIR/deploy/profiles/$PROFILE.env"
RUN=/tmp/notes
mkdir -p "$RUN"
export APP_DIR RUN DATA_DIR PORT APP_PORT REDIS_PORT AUTOINDEX SERVER_TOKENS HEADER_BUFFER

[ -f "$SECRETS_DIR/tls.crt" ] || /bin/sh "$APP_DIR/deploy/dev-secrets.sh"
# every service reads these, so make them readable
chmod "$SECRETS_MODE" "$SECRETS_DIR"/*

. "$APP_DIR/deploy/hosts.sh"

if [ "$NODE_ID" = "$STORE" ]; then
    [ "$WEB" = "$STORE" ] || REDIS_BIND=0.0.0.0   # the web host must reach it
    export REDIS_BIND
    /bin/sh "$APP_DIR/deploy/redis.sh" "$RUN/redis.conf"
    /usr/bin/redis-server "$RUN/redis.conf" &
fi

if [ "$NODE_ID" = "$WEB" ]; then
    if [ "$WEB" = "$STORE" ]; then REDIS_HOST=127.0.0.1; else REDIS_HOST=$STORE_ADDRESS; fi
    for i in 1 2 3 4 5 6 7 8 9 10; do   # the application loads its users into redis
        python3 -c "import socket; socket.create_connection(('$REDIS_HOST', $REDIS_PORT), 1)" 2>/dev/null && break
        sleep 0.5
    done
    APP_BIND=$APP_BIND REDIS_HOST=$REDIS_HOST DEBUG=$DEBUG TRACEBACKS=$TRACEBACKS \
    USERS_FILE=$SECRETS_DIR/users.txt SECRET_FILE=$SECRETS_DIR/secret.key \
    ADMIN_TOKEN_FILE=$SECRETS_DIR/admin.token \
        /usr/bin/python3 "$APP_DIR/app/server.py" &
    /bin/sh "$APP_DIR/deploy/nginx.sh" "$RUN/nginx.conf"
    /usr/sbin/nginx -c "$RUN/nginx.conf" -e "$RUN/nginx-error.log" &
fi
wait
