#!/bin/sh
# the starter's nginx.conf with room for connections: 8 per worker refuses a busy minute
set -eu
D=/tmp/web
mkdir -p "$D"
sed -e "s/@PORT@/$PORT/" -e "s/@APP@/$APP_HOST:$APP_PORT/" -e "s#@D@#$D#g" \
    -e "s/worker_connections [0-9]*;/worker_connections 2048;/" \
    /srv/app/web/nginx.conf >"$D/nginx.conf"
exec /usr/sbin/nginx -c "$D/nginx.conf" -p "$D" -g "daemon off;"
