"""Reconciler: pull the desired state, converge this host, reload only on change.

Every loop: GET the desired state (If-None-Match), then compare the host with it and fix
only what differs: files written atomically (temp file in the same directory, fsync,
rename), modes set, absent paths removed after the new release's files and the reloaded
configuration are in place, unwanted listeners ended, nginx started if it does not run and
reloaded (gracefully) only when a file it reads changed or the loaded configuration is
not the desired one.
"""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

URL = os.environ["DESIRED_URL"]
PERIOD = min(0.5, float(os.environ.get("CONVERGE_S", "3")) / 4)
NGINX = "/usr/sbin/nginx"
PIDFILE = "/srv/data/nginx/nginx.pid"
STATE = "/srv/data/reconciler"


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


class Puller:
    def __init__(self):
        self.etag = None
        self.doc = None

    def pull(self):
        req = urllib.request.Request(URL)
        if self.etag and self.doc is not None:
            req.add_header("If-None-Match", self.etag)
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                doc = json.loads(r.read())
                if doc.get("format") != 1:
                    raise ValueError(f"unknown format {doc.get('format')}")
                self.doc, self.etag = doc, r.headers.get("ETag")
        except urllib.error.HTTPError as e:
            if e.code != 304:
                log(f"desired state: HTTP {e.code}")
        except (OSError, ValueError) as e:
            log(f"desired state: {e}")
        return self.doc


def read(path):
    try:
        st = os.lstat(path)
        if not os.path.isfile(path) or os.path.islink(path):
            return None, None
        with open(path, "rb") as fh:
            return fh.read(), st.st_mode & 0o7777
    except OSError:
        return None, None


def write_atomic(path, data, mode):
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{os.path.basename(path)}.reconcile-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


def converge_files(files):
    """Fix the files; the set of paths whose content changed."""
    changed = set()
    for f in files:
        path, data, mode = f["path"], f["content"].encode(), int(f["mode"], 8)
        have, have_mode = read(path)
        if have != data:
            if os.path.islink(path) or os.path.isdir(path):
                os.unlink(path)
            write_atomic(path, data, mode)
            changed.add(path)
        elif have_mode != mode:
            os.chmod(path, mode)
    return changed


def remove_absent(paths):
    for p in paths:
        if os.path.lexists(p):
            os.unlink(p)
            d = os.path.dirname(p)
            while d.startswith("/srv/etc/releases/") and d != "/srv/etc/releases":
                try:
                    os.rmdir(d)
                except OSError:
                    break
                d = os.path.dirname(d)


def master_pid():
    try:
        with open(PIDFILE) as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if fh.read().startswith(b"nginx: master"):
                return pid
    except (OSError, ValueError):
        pass
    return None


def listeners():
    """port -> socket inodes listening on it (TCP, v4 and v6)."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A":
                out.setdefault(int(cols[1].rsplit(":", 1)[1], 16), set()).add(cols[9])
    return out


def end_listeners(ports):
    found = listeners()
    inodes = set()
    for p in ports:
        inodes |= found.get(p, set())
    if not inodes:
        return
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in (me, 1):
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                log(f"ending pid {pid}: it listens on a forbidden port")
                try:
                    os.kill(int(pid), signal.SIGTERM)
                except OSError:
                    pass
                break


def served_release(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=1) as r:
            return r.read(200).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return f"status {e.code}"
    except OSError:
        return ""


def converge(doc, port, state):
    for d in ("/srv/data/nginx", STATE):
        os.makedirs(d, exist_ok=True)
    changed = converge_files(doc["files"])
    svc = next((s for s in doc.get("services", []) if s.get("name") == "nginx"), None)
    if svc:
        reload_on = set(svc.get("reload_when_changed", [svc["config"]]))
        pid = master_pid()
        want = f"app={doc['release']} config={doc['release']}"
        if pid is None:
            log("starting nginx")
            os.system(f"{NGINX} -c {svc['config']} >>/srv/logs/nginx-start.log 2>&1")
        elif changed & reload_on:
            log(f"reloading nginx: {', '.join(sorted(changed & reload_on))} changed")
            os.kill(pid, signal.SIGHUP)
        elif want not in served_release(port):
            # a configuration loaded by hand (or a reload still under way: look twice)
            if state.get("stale"):
                log("nginx serves another configuration: reloading")
                os.kill(pid, signal.SIGHUP)
            state["stale"] = not state.get("stale")
        else:
            state["stale"] = False
    if doc.get("absent"):
        remove_absent(doc["absent"])
    end_listeners(doc.get("must_not_listen", []))


def first_state():
    """The first desired state the config host gives (waiting for it), and a puller."""
    puller = Puller()
    while True:
        doc = puller.pull()
        if doc is not None:
            return doc, puller
        time.sleep(0.3)


def settle(doc):
    """Converge a few loops (nginx starts in one and is checked in the next): what a
    one-shot apply does (the naive tier and probes build on it)."""
    state = {}
    for _ in range(3):
        converge(doc, int(os.environ.get("PORT", "8080")), state)
        time.sleep(0.5)


def main():
    port = int(os.environ.get("PORT", "8080"))
    puller = Puller()
    state = {}
    while True:
        begun = time.monotonic()
        doc = puller.pull()
        if doc is not None:
            try:
                converge(doc, port, state)
            except Exception as e:  # keep going: the next loop may succeed
                log(f"converge: {type(e).__name__}: {e}")
        time.sleep(max(0.05, PERIOD - (time.monotonic() - begun)))


if __name__ == "__main__":
    main()
