#!/bin/sh
# writes the default configuration on first start, then runs the server
[ -f "$CONF" ] || printf 'greeting = hello\n' > "$CONF"
exec /usr/bin/python3 /srv/app/server.py
