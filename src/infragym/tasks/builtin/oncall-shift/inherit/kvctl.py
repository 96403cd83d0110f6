"""kvctl: operating a kvnode from its host (see RUNBOOK.md).

python3 /srv/app/kvctl.py status [HOST ...]  the nodes' /admin/status (default: this one)
python3 /srv/app/kvctl.py sync               pull every peer's data into this running node
python3 /srv/app/kvctl.py restore            rebuild this stopped node's data from its peers
python3 /srv/app/kvctl.py migrate            convert this stopped node's data to release 2
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "release-2"))

import kvnode
import server
import store_v2

PORT = int(os.environ.get("PORT", "8080"))
DATA = os.environ.get("DATA_DIR", "/srv/data")
ME = os.environ.get("NODE_ID", "")


def call(host: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, PORT, timeout=5)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def running() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", PORT)) == 0


def dumps(peers: dict[str, str]) -> dict[str, server.Entry]:
    """Every entry of the peers that answer, the newest stamp of each key; a majority of
    the membership (this node not counted) must answer."""
    merged: dict[str, server.Entry] = {}
    got = []
    for name in sorted(peers):
        if name == ME:
            continue
        try:
            status, body = call(name, "GET", "/admin/dump")
        except OSError as exc:
            print(f"{name}: no answer ({exc})")
            continue
        if status != 200:
            print(f"{name}: answered {status}")
            continue
        got.append(name)
        for line in body.decode().splitlines():
            if line.strip():
                r = json.loads(line)
                stamp = (int(r["c"]), str(r["n"]))
                if stamp > merged.get(r["k"], (server.ZERO, None))[0]:
                    merged[r["k"]] = (stamp, r["v"])
    need = len(peers) // 2 + 1
    if len(got) < need:
        sys.exit(f"only {len(got)} peers answered ({got}); {need} are needed: not safe")
    print(f"read {len(merged)} keys from {', '.join(got)}")
    return merged


def status(hosts: list[str]) -> None:
    for h in hosts or ["127.0.0.1"]:
        try:
            code, body = call(h, "GET", "/admin/status")
            print(h, code, body.decode().strip())
        except OSError as exc:
            print(h, "no answer:", exc)


def sync() -> None:
    if not running():
        sys.exit("this node is not running: start it first (or use restore while it is down)")
    merged = dumps(kvnode.membership())
    for key, ((c, n), v) in merged.items():
        body = json.dumps({"c": c, "n": n, "v": v}).encode()
        code, _ = call("127.0.0.1", "PUT", f"/internal/{key}", body)
        if code != 200:
            sys.exit(f"this node refused {key}: {code}")
    print(f"synced {len(merged)} keys into {ME}")


def local_entries(release: str) -> dict[str, server.Entry]:
    """What this node's store still holds (up to its first damaged record)."""
    if release == "2":
        if not os.path.exists(os.path.join(DATA, "kv2", "store.dat")):
            return {}
        r: server.Replica = store_v2.ReplicaV2.__new__(store_v2.ReplicaV2)
        r.path, r.entries, r.appended = os.path.join(DATA, "kv2", "store.dat"), {}, 0
    else:
        r = server.Replica.__new__(server.Replica)
        r.path, r.entries, r.appended = os.path.join(DATA, "replica.log"), {}, 0
    try:
        r._load()
    except SystemExit:
        return {}
    return r.entries


def write_v1(entries: dict[str, server.Entry]) -> None:
    path = os.path.join(DATA, "replica.log")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        for k, ((c, n), v) in entries.items():
            fh.write(json.dumps({"k": k, "c": c, "n": n, "v": v}, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(path + ".tmp", path)


def restore() -> None:
    if running():
        sys.exit("this node is running: stop it first (service stop)")
    release = kvnode.release()
    local = local_entries(release)
    merged = dumps(kvnode.membership())
    for k, (stamp, v) in local.items():
        if stamp > merged.get(k, (server.ZERO, None))[0]:
            merged[k] = (stamp, v)
    aside = os.path.join(DATA, "damaged-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
    os.makedirs(aside)
    for name in ("replica.log", "kv2"):
        if os.path.exists(os.path.join(DATA, name)):
            os.rename(os.path.join(DATA, name), os.path.join(aside, name))
    if release == "2":
        store_v2.write_store(os.path.join(DATA, "kv2", "store.dat"), merged)
    else:
        write_v1(merged)
    print(f"restored {len(merged)} keys ({len(local)} readable locally); old data in {aside}")


def migrate() -> None:
    if running():
        sys.exit("this node is running: stop it first (service stop)")
    v1 = os.path.join(DATA, "replica.log")
    v2 = os.path.join(DATA, "kv2", "store.dat")
    if os.path.exists(v2) and not os.path.exists(v1):
        print("already migrated")
        return
    entries = local_entries("1")
    store_v2.write_store(v2, entries)
    if os.path.exists(v1):
        os.rename(v1, v1 + ".migrated")
    print(f"migrated {len(entries)} keys to {v2}; set /srv/etc/kv/version to 2 and start")


def main() -> None:
    cmd, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("help", [])
    if cmd == "status":
        status(args)
    elif cmd == "sync":
        sync()
    elif cmd == "restore":
        restore()
    elif cmd == "migrate":
        migrate()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
