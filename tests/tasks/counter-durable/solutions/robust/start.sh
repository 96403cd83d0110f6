#!/bin/sh
exec /usr/bin/python3 /srv/app/server.py
