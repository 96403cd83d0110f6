#!/bin/sh
# the store keeps its records under /srv/data/store
mkdir -p /srv/data/store
exec /usr/bin/python3 /srv/app/server.py
