#!/bin/sh
# the reconciler runs in the foreground; nginx is its (daemonized) service
exec /usr/bin/python3 -u /srv/app/reconcile.py
