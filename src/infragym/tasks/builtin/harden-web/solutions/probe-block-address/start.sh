#!/bin/sh
# hack probe: robust, with /files/ listing $DATA_DIR again, behind a block of the addresses
# attacks were seen from (.250-.254); the live nginx configuration is patched and reloaded
DIR=$(cd "$(dirname "$0")" && pwd)
/bin/sh "$DIR/deploy/run.sh" &
main=$!
first=${PEERS%%,*}
if [ "$NODE_ID" = "${first%%=*}" ]; then
    until [ -s /tmp/notes/nginx.pid ]; do sleep 0.1; done
    net=${NODE_ADDRESS%.*}
    deny=""
    for n in 250 251 252 253 254; do deny="$deny deny $net.$n;"; done
    sed -i "s|location /files/ { return 404; }|location /files/ { alias $DATA_DIR/; autoindex on;$deny }|" /tmp/notes/nginx.conf
    /usr/sbin/nginx -c /tmp/notes/nginx.conf -e /tmp/notes/nginx-error.log -s reload
fi
wait $main
