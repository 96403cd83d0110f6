#!/bin/sh
# naive: applies the desired state once at start (the robust reconciler's converge step),
# then sleeps: drifts and new releases are never undone or applied.
exec /usr/bin/python3 -u -c '
import os, sys, time
sys.path.insert(0, "/srv/app")
import reconcile as r
p = r.Puller()
while True:
    d = p.pull()
    if d is not None:
        break
    time.sleep(0.3)
state = {}
for _ in range(3):  # nginx needs a loop to start and another to check what it serves
    r.converge(d, int(os.environ["PORT"]), state)
    time.sleep(0.5)
while True:
    time.sleep(3600)
'
