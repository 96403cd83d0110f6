#!/bin/sh
# nginx on the web host: clients come in on PORT, requests go to the application host.
set -eu
D=/tmp/web
mkdir -p "$D"
sed -e "s/@PORT@/$PORT/" -e "s/@APP@/$APP_HOST:$APP_PORT/" -e "s#@D@#$D#g" \
    /srv/app/web/nginx.conf >"$D/nginx.conf"
exec /usr/sbin/nginx -c "$D/nginx.conf" -p "$D" -g "daemon off;"
