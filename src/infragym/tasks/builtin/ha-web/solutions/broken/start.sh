#!/bin/sh
# broken: the app hosts run the application, but haproxy's configuration does not parse
# (a misspelt keyword, a server without an address), so no load balancer ever listens.
case "$ROLE" in
app) exec /usr/bin/python3 /srv/app/app/server.py ;;
esac
mkdir -p /tmp/ha-web
cat > /tmp/ha-web/haproxy.cfg <<CFG
defaults
    mode http
    timeout conect 1s
frontend web
    bind :$PORT
    default_backend apps
backend apps
    server app1
CFG
exec /usr/sbin/haproxy -db -f /tmp/ha-web/haproxy.cfg
