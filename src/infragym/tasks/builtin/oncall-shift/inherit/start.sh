#!/bin/sh
# kvnode's service command on every host (the `service` tool runs it): the node's
# settings live in /srv/etc/kv (kv.conf, peers, version), created from the defaults the
# first time a node starts. See RUNBOOK.md.
mkdir -p /srv/etc/kv /srv/data
[ -f /srv/etc/kv/kv.conf ] || cp /srv/app/kv.conf.default /srv/etc/kv/kv.conf
exec /usr/bin/python3 /srv/app/kvnode.py
