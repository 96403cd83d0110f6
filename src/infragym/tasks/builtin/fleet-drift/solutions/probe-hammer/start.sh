#!/bin/sh
# probe: every second rewrites every file of the desired state, removes the absent ones,
# ends forbidden listeners and restarts nginx: converges fast, churns and drops requests.
exec /usr/bin/python3 -u -c '
import os, signal, sys, time
sys.path.insert(0, "/srv/app")
import reconcile as r
d, p = r.first_state()
while True:
    os.makedirs("/srv/data/nginx", exist_ok=True)
    for f in d["files"]:
        r.write_atomic(f["path"], f["content"].encode(), int(f["mode"], 8))
    r.remove_absent(d.get("absent", []))
    r.end_listeners(d.get("must_not_listen", []))
    pid = r.master_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        while r.master_pid():
            time.sleep(0.02)
    os.system("/usr/sbin/nginx -c /srv/etc/nginx/nginx.conf")
    time.sleep(1)
    d = p.pull() or d
'
