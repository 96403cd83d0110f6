#!/bin/sh
# naive: applies the desired state once at start (the robust reconciler's converge step),
# then sleeps: drifts and new releases are never undone or applied.
exec /usr/bin/python3 -u -c '
import sys, time
sys.path.insert(0, "/srv/app")
import reconcile as r
r.settle(r.first_state()[0])
while True:
    time.sleep(3600)
'
