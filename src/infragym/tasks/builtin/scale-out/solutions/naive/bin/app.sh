#!/bin/sh
# an application host: the service (its counts in redis on the state host)
exec /usr/bin/python3 /srv/app/app/server.py
