"""Release 2 storage: the same registers in a new on-disk format.

``DATA_DIR/kv2/store.dat`` starts with the line ``KVSTORE 2`` and holds one record per
line, ``<crc32 as 8 hex digits> <json>``, the JSON ``{"key", "stamp": [counter, node],
"value"}``: a record whose checksum does not match (a torn or corrupted write) ends the
load, where release 1 could not tell a damaged record from a good one.

Release 2 reads nothing of release 1's ``replica.log``: ``kvctl.py migrate`` converts a
stopped node's data. A node with release 1 data and no ``kv2/`` refuses to start.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import zlib

import server

MAGIC = "KVSTORE 2\n"


def encode(key: str, stamp: tuple[int, str], value: str | None) -> str:
    body = json.dumps({"key": key, "stamp": [stamp[0], stamp[1]], "value": value},
                      ensure_ascii=False)  # fmt: skip
    return f"{zlib.crc32(body.encode('utf-8')):08x} {body}\n"


def decode(line: str) -> tuple[str, tuple[int, str], str | None] | None:
    crc, _, body = line.rstrip("\n").partition(" ")
    try:
        if int(crc, 16) != zlib.crc32(body.encode("utf-8")):
            return None
        rec = json.loads(body)
        return rec["key"], (int(rec["stamp"][0]), str(rec["stamp"][1])), rec["value"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def write_store(path: str, entries: dict[str, server.Entry]) -> None:
    """Write ``entries`` as a new store at ``path`` (atomically: write, fsync, rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(MAGIC)
        for key, (stamp, value) in entries.items():
            fh.write(encode(key, stamp, value))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class ReplicaV2(server.Replica):
    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, "kv2", "store.dat")
        self.lock = threading.Lock()
        self.entries: dict[str, server.Entry] = {}
        self.appended = 0
        if not os.path.exists(self.path):
            write_store(self.path, {})
        self._load()
        self.log = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as fh:
            if fh.readline() != MAGIC:
                sys.exit(f"{self.path} is not a release 2 store (no {MAGIC.strip()!r} header)")
            for line in fh:
                rec = decode(line)
                if rec is None:
                    break  # a torn or damaged record: nothing after it is trusted
                key, stamp, value = rec
                if stamp > self.entries.get(key, (server.ZERO, None))[0]:
                    self.entries[key] = (stamp, value)
                self.appended += 1

    def put(self, key: str, stamp: server.Stamp, value: str | None) -> None:
        with self.lock:
            if stamp <= self.entries.get(key, (server.ZERO, None))[0]:
                return
            self.log.write(encode(key, stamp, value))
            self.log.flush()
            os.fsync(self.log.fileno())
            self.entries[key] = (stamp, value)
            self.appended += 1
            if self.appended > server.COMPACT_EVERY + 2 * len(self.entries):
                self.log.close()
                write_store(self.path, self.entries)
                self.log = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                self.appended = len(self.entries)


def open_store(data_dir: str) -> ReplicaV2:
    if os.path.exists(os.path.join(data_dir, "replica.log")) and not os.path.isdir(
        os.path.join(data_dir, "kv2")
    ):
        sys.exit(
            f"{data_dir}/replica.log holds release 1 data and there is no kv2/: stop the node "
            "and run `python3 /srv/app/kvctl.py migrate` first (release 2 reads only its own "
            "format)"
        )
    return ReplicaV2(data_dir)
