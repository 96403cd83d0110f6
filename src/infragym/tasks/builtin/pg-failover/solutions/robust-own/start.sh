#!/bin/sh
# robust-own: a failover controller of its own (pgha.py, no Patroni) on PostgreSQL 15's
# synchronous streaming replication, with an etcd 3.4 leader key; written from the
# instructions, as a check that the grader rewards behaviour, not the reference's shape.
exec /usr/bin/python3 -u /srv/app/pgha.py
