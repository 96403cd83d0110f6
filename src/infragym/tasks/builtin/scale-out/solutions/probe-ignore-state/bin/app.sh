#!/bin/sh
# probe: a stateless app that signs with one iteration (fast and wrong)
WORK=1 exec /usr/bin/python3 /srv/app/app/server.py
