#!/bin/sh
# kvnode's service command on every host (the `service` tool runs it): the node's
# settings live in /srv/etc/kv (kv.conf, peers, version), created from the defaults the
# first time a node starts. See RUNBOOK.md.
mkdir -p /srv/etc/kv /srv/data
[ -f /srv/etc/kv/kv.conf ] || cp /srv/app/kv.conf.default /srv/etc/kv/kv.conf
# -I: isolated (no user site-packages, no PYTHON* variables): the node runs the code
# deployed in /srv/app and nothing else
exec /usr/bin/python3 -I /srv/app/kvnode.py
