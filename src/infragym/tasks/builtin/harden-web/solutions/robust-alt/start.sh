#!/bin/sh
# notes, hardened in one script: nginx (TLS 1.3, an allow-list of routes) -> app/secure.py
# on a unix socket; the admin endpoint alone on 127.0.0.1:$APP_PORT; redis behind an ACL
# user, on a unix socket when it shares the host.
set -eu
umask 077
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=/tmp/notes-alt
mkdir -p "$RUN"
[ -e "$SECRETS_DIR/tls.crt" ] || /bin/sh "$HERE/deploy/dev-secrets.sh"
chmod go= "$SECRETS_DIR" "$SECRETS_DIR"/*
S=$SECRETS_DIR

set -- $(echo "$PEERS" | tr ',' ' ')
web=${1%%=*}
eval "store=\${$#}"
store_name=${store%%=*}
store_addr=${store#*=}
pass=$(cat "$S/redis.password")

wait_for() {  # wait_for <python expression that connects>
    n=0
    until python3 -c "import socket; $1" 2>/dev/null; do
        n=$((n + 1)); [ $n -lt 60 ] || { echo "start.sh: timed out: $1" >&2; exit 1; }
        sleep 0.2
    done
}

if [ "$NODE_ID" = "$store_name" ]; then
    {
        echo "daemonize no"
        echo "dir $DATA_DIR"
        echo "dbfilename notes.rdb"
        echo "save 60 1"
        if [ "$store_name" = "$web" ]; then
            echo "port 0"
            echo "unixsocket $RUN/redis.sock"
            echo "unixsocketperm 700"
        else
            echo "port $REDIS_PORT"
            echo "bind $NODE_ADDRESS"
        fi
        echo "user default off"
        echo "user notes on >$pass ~* resetchannels -@all +@read +@write +@keyspace +@connection -@dangerous +keys"
    } >"$RUN/redis.conf"
    redis-server "$RUN/redis.conf" &
fi

if [ "$NODE_ID" = "$web" ]; then
    if [ "$store_name" = "$web" ]; then
        REDIS_AT=$RUN/redis.sock
        wait_for "socket.socket(socket.AF_UNIX).connect('$REDIS_AT')"
    else
        REDIS_AT=$store_addr:$REDIS_PORT
        wait_for "socket.create_connection(('$store_addr', $REDIS_PORT), 1)"
    fi
    env -i PATH="$PATH" HOME=/tmp APP_PORT="$APP_PORT" DATA_DIR="$DATA_DIR" \
        REDIS_AT="$REDIS_AT" REDIS_AUTH_FILE="$S/redis.password" APP_SOCKET="$RUN/app.sock" \
        USERS_FILE="$S/users.txt" SECRET_FILE="$S/secret.key" ADMIN_TOKEN_FILE="$S/admin.token" \
        python3 "$HERE/app/secure.py" &
    wait_for "socket.socket(socket.AF_UNIX).connect('$RUN/app.sock')"
    cat >"$RUN/nginx.conf" <<CONF
daemon off;
pid $RUN/nginx.pid;
error_log $RUN/error.log;
worker_processes 1;
events { worker_connections 512; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    server_tokens off;
    client_body_temp_path $RUN/body;
    proxy_temp_path $RUN/proxy;
    fastcgi_temp_path $RUN/fastcgi;
    uwsgi_temp_path $RUN/uwsgi;
    scgi_temp_path $RUN/scgi;
    client_header_buffer_size 1k;
    large_client_header_buffers 4 4k;
    client_max_body_size 64k;
    upstream notes { server unix:$RUN/app.sock; }
    server {
        listen $PORT ssl;
        ssl_certificate $S/tls.crt;
        ssl_certificate_key $S/tls.key;
        ssl_protocols TLSv1.3;
        ssl_session_tickets off;
        add_header Strict-Transport-Security "max-age=31536000" always;
        location = / { proxy_pass http://notes; }
        location = /health { proxy_pass http://notes; }
        location = /login { proxy_pass http://notes; }
        location = /api/notes { proxy_pass http://notes; }
        location = /download { proxy_pass http://notes; }
        location ^~ /static/ { alias $HERE/static/; }
        location ^~ /files/public/ { alias $DATA_DIR/public/; }
        location / { return 404; }
    }
}
CONF
    nginx -c "$RUN/nginx.conf" -e "$RUN/error.log" &
fi
wait
