#!/bin/sh
# the starter's nginx.conf with room for connections (8 per worker refuses a busy minute)
# and kept-alive connections to the app, so its threads (each with its own database
# connection) live across requests instead of one connection per request
set -eu
D=/tmp/web
mkdir -p "$D"
sed -e "s/@PORT@/$PORT/" -e "s#@D@#$D#g" \
    -e "s/worker_connections [0-9]*;/worker_connections 2048;/" \
    -e "s#^http {#http {\n    upstream shop { server $APP_HOST:$APP_PORT; keepalive 32; }#" \
    -e "s#proxy_pass http://@APP@;#proxy_pass http://shop; proxy_http_version 1.1; proxy_set_header Connection \"\";#" \
    /srv/app/web/nginx.conf >"$D/nginx.conf"
exec /usr/sbin/nginx -c "$D/nginx.conf" -p "$D" -g "daemon off;"
