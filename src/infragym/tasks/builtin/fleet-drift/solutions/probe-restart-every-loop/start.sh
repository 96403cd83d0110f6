#!/bin/sh
# probe: converges like the robust reconciler every 2 s, but restarts nginx (stop, start)
# on every loop instead of reloading it when its configuration changed.
exec /usr/bin/python3 -u -c '
import os, signal, sys, time
sys.path.insert(0, "/srv/app")
import reconcile as r
p, state = r.Puller(), {}
while True:
    d = p.pull()
    if d is not None:
        r.converge(d, int(os.environ["PORT"]), state)
        pid = r.master_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            while r.master_pid():
                time.sleep(0.02)
        r.converge(d, int(os.environ["PORT"]), state)
    time.sleep(2)
'
