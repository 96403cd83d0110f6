#!/usr/bin/env python3
"""A replicated key-value service: a Raft log over 3 hosts (stdlib only).

A correct design unlike the ABD reference (solutions/robust), written from
instructions.md alone, to check that the reward does not measure the reference's shape.

One leader, elected with randomized timeouts (250-450 ms, heartbeats every 50 ms), terms
and a pre-vote round (a host that was cut off does not depose a healthy leader when it
comes back); a leader that has not heard from a majority for 500 ms steps down. Every
write is an entry of the log; the leader answers 2xx once a majority has the entry
fsynced and it is committed and applied. Reads are linearizable by read-index: the
leader waits for an entry of its term to commit, notes its commit index, confirms it is
still leader by a round of heartbeats acknowledged by a majority, then answers from its
state. Followers forward client requests to the leader, and through the other peer
while they have not heard from it lately (a partition may cut only the link between the
two). Terms, votes and the log are fsynced in DATA_DIR before any answer that counts on
them. A write carries a request id so a follower can retry it at a new leader after a
failover without applying it twice. 503 only when no attempt can have put the write in a
log.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable

HEARTBEAT_S = 0.05
ELECTION_MIN_S = 0.25
ELECTION_MAX_S = 0.45
CHECK_QUORUM_S = 0.50
APPEND_TIMEOUT_S = 0.25
VOTE_TIMEOUT_S = 0.15
CLIENT_BUDGET_S = 0.9
FORWARD_ATTEMPT_S = 0.30
MAX_BATCH_BYTES = 1 << 20
MAX_VALUE_BYTES = 1 << 20  # every variant's limit (16-128 KiB) and then some
KEY_RE = re.compile(r"[A-Za-z0-9._~-]{1,256}")  # every variant's longest key (64-200)

NODE_ID = os.environ["NODE_ID"]
PORT = int(os.environ.get("PORT", "8080"))
DATA_DIR = os.environ.get("DATA_DIR", "/srv/data")
BIND = os.environ.get("BIND_ADDRESS", "0.0.0.0")
PEERS: dict[str, str] = {}
for _item in os.environ["PEERS"].split(","):
    _name, _, _addr = _item.strip().partition("=")
    PEERS[_name] = _addr
OTHERS = [p for p in PEERS if p != NODE_ID]
MAJORITY = len(PEERS) // 2 + 1

# a log entry: (term, request id or None, key or None, value bytes or None); None key = no-op
Entry = tuple


def log(msg: str) -> None:
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    print(f"{stamp} {NODE_ID} {msg}", file=sys.stderr, flush=True)


def encode_entry(e: Entry) -> list:
    v = None if e[3] is None else base64.b64encode(e[3]).decode()
    return [e[0], e[1], e[2], v]


def decode_entry(x: list) -> Entry:
    return (int(x[0]), x[1], x[2], None if x[3] is None else base64.b64decode(x[3]))


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Storage:
    """Term and vote in a file replaced atomically; the log as JSON lines, fsynced."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.state_path = os.path.join(directory, "raft-state.json")
        self.log_path = os.path.join(directory, "raft-log.jsonl")
        self.fh = None

    def load_state(self) -> tuple[int, str | None]:
        try:
            with open(self.state_path) as f:
                d = json.load(f)
            return int(d["term"]), d["vote"]
        except FileNotFoundError:
            return 0, None

    def save_state(self, term: int, vote: str | None) -> None:
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"term": term, "vote": vote}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)
        fsync_dir(self.dir)

    def load_log(self) -> list[Entry]:
        entries: list[Entry] = []
        torn = False
        try:
            with open(self.log_path, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        torn = True
                        break
                    try:
                        entries.append(decode_entry(json.loads(line)))
                    except (ValueError, IndexError, TypeError):
                        torn = True
                        break
        except FileNotFoundError:
            pass
        if torn:  # a write cut short by a crash was never acknowledged: drop it
            self.rewrite(entries)
        else:
            self._open()
        return entries

    def _open(self) -> None:
        new = not os.path.exists(self.log_path)
        self.fh = open(self.log_path, "ab")  # noqa: SIM115 - the log stays open
        if new:
            os.fsync(self.fh.fileno())
            fsync_dir(self.dir)

    def append(self, entries: list[Entry]) -> None:
        data = b"".join(json.dumps(encode_entry(e)).encode() + b"\n" for e in entries)
        self.fh.write(data)
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def rewrite(self, entries: list[Entry]) -> None:
        if self.fh is not None:
            self.fh.close()
        tmp = self.log_path + ".tmp"
        with open(tmp, "wb") as f:
            for e in entries:
                f.write(json.dumps(encode_entry(e)).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.log_path)
        fsync_dir(self.dir)
        self.fh = open(self.log_path, "ab")  # noqa: SIM115 - the log stays open


# outcomes of a local proposal or read
OK, NOT_LEADER, UNKNOWN = "ok", "not-leader", "unknown"


class Raft:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.store = Storage(DATA_DIR)
        self.term, self.voted_for = self.store.load_state()
        self.log: list[Entry] = [(0, None, None, None), *self.store.load_log()]
        self.commit = 0
        self.applied = 0
        self.kv: dict[str, bytes] = {}
        self.applied_ids: set[str] = set()
        self.role = "follower"
        self.leader: str | None = None
        self.last_leader_contact = 0.0
        self.election_deadline = time.monotonic() + self._timeout() + 0.5
        self.next_index = {p: 1 for p in OTHERS}
        self.match_index = {p: 0 for p in OTHERS}
        self.acked_seq = {p: 0 for p in OTHERS}
        self.last_ack = {p: 0.0 for p in OTHERS}
        self.last_sent = {p: 0.0 for p in OTHERS}
        self.sent_seq = {p: 0 for p in OTHERS}
        self.retry_at = {p: 0.0 for p in OTHERS}
        self.read_seq = 0
        log(f"start term={self.term} vote={self.voted_for} log={len(self.log) - 1}")

    @staticmethod
    def _timeout() -> float:
        return random.uniform(ELECTION_MIN_S, ELECTION_MAX_S)

    def last_index(self) -> int:
        return len(self.log) - 1

    # --- state changes (cond held) ---

    def _step_down(self, term: int) -> None:
        if term > self.term:
            self.term = term
            self.voted_for = None
            self.store.save_state(self.term, self.voted_for)
        if self.role != "follower":
            log(f"follower in term {self.term}")
        self.role = "follower"
        self.cond.notify_all()

    def _become_leader(self) -> None:
        self.role = "leader"
        self.leader = NODE_ID
        now = time.monotonic()
        for p in OTHERS:
            self.next_index[p] = self.last_index() + 1
            self.match_index[p] = 0
            self.acked_seq[p] = 0
            self.sent_seq[p] = 0
            self.last_ack[p] = now
            self.last_sent[p] = 0.0
            self.retry_at[p] = 0.0
        self._append_local([(self.term, None, None, None)])
        log(f"leader in term {self.term}")

    def _append_local(self, entries: list[Entry]) -> None:
        self.store.append(entries)
        self.log.extend(entries)
        self._advance_commit()
        self.cond.notify_all()

    def _advance_commit(self) -> None:
        matches = sorted([self.last_index()] + [self.match_index[p] for p in OTHERS], reverse=True)
        n = matches[MAJORITY - 1]
        if n > self.commit and self.log[n][0] == self.term:
            self.commit = n
            self._apply()

    def _apply(self) -> None:
        while self.applied < self.commit:
            self.applied += 1
            _, rid, key, value = self.log[self.applied]
            if key is None or rid in self.applied_ids:
                continue
            self.kv[key] = value
            self.applied_ids.add(rid)
        self.cond.notify_all()

    def _up_to_date(self, lli: int, llt: int) -> bool:
        my_t = self.log[-1][0]
        return llt > my_t or (llt == my_t and lli >= self.last_index())

    # --- RPC handlers ---

    def on_vote(self, req: dict) -> dict:
        with self.cond:
            now = time.monotonic()
            term, cand = int(req["term"]), req["cand"]
            up = self._up_to_date(int(req["lli"]), int(req["llt"]))
            if req.get("pre"):
                heard = self.role == "leader" or (
                    self.leader is not None and now - self.last_leader_contact < ELECTION_MIN_S
                )
                return {"term": self.term, "granted": term > self.term and up and not heard}
            if term < self.term:
                return {"term": self.term, "granted": False}
            if term > self.term:
                self._step_down(term)
                self.leader = None
            granted = False
            if self.voted_for in (None, cand) and up:
                if self.voted_for != cand:
                    self.voted_for = cand
                    self.store.save_state(self.term, self.voted_for)
                granted = True
                self.election_deadline = now + self._timeout()
            return {"term": self.term, "granted": granted}

    def on_append(self, req: dict) -> dict:
        with self.cond:
            term = int(req["term"])
            if term < self.term:
                return {"term": self.term, "ok": False}
            if term > self.term or self.role != "follower":
                self._step_down(term)
            now = time.monotonic()
            if self.leader != req["leader"]:
                self.leader = req["leader"]
                self.cond.notify_all()
            self.last_leader_contact = now
            self.election_deadline = now + self._timeout()
            prev = int(req["prev"])
            if prev > self.last_index():
                return {"term": self.term, "ok": False, "hint": self.last_index() + 1}
            if self.log[prev][0] != int(req["prev_term"]):
                t = self.log[prev][0]
                i = prev
                while i > self.commit + 1 and self.log[i - 1][0] == t:
                    i -= 1
                return {"term": self.term, "ok": False, "hint": max(1, i)}
            entries = [decode_entry(x) for x in req["entries"]]
            idx = prev
            new: list[Entry] = []
            truncated = False
            for e in entries:
                idx += 1
                if idx <= self.last_index():
                    if self.log[idx][0] == e[0]:
                        continue
                    if idx <= self.commit:
                        raise RuntimeError("asked to overwrite a committed entry")
                    del self.log[idx:]
                    truncated = True
                self.log.append(e)
                new.append(e)
            if truncated:
                self.store.rewrite(self.log[1:])
            elif new:
                self.store.append(new)
            match = prev + len(entries)
            commit = min(int(req["commit"]), match)
            if commit > self.commit:
                self.commit = commit
                self._apply()
            return {"term": self.term, "ok": True, "match": match}

    # --- leader replication ---

    def replicator(self, peer: str) -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            with self.cond:
                while True:
                    now = time.monotonic()
                    if self.role == "leader" and now >= self.retry_at[peer]:
                        due = (
                            now - self.last_sent[peer] >= HEARTBEAT_S
                            or self.next_index[peer] <= self.last_index()
                            or self.read_seq > self.sent_seq[peer]
                        )
                        if due:
                            break
                        wait = HEARTBEAT_S - (now - self.last_sent[peer])
                    else:
                        wait = HEARTBEAT_S
                    self.cond.wait(max(0.001, min(wait, HEARTBEAT_S)))
                term = self.term
                nxt = self.next_index[peer]
                batch: list[list] = []
                size = 0
                for e in self.log[nxt:]:
                    if batch and size > MAX_BATCH_BYTES:
                        break
                    batch.append(encode_entry(e))
                    size += 64 + (0 if e[3] is None else len(e[3]) * 4 // 3)
                seq = self.read_seq
                req = {
                    "term": term,
                    "leader": NODE_ID,
                    "prev": nxt - 1,
                    "prev_term": self.log[nxt - 1][0],
                    "entries": batch,
                    "commit": self.commit,
                }
                sent_at = time.monotonic()
                self.last_sent[peer] = sent_at
                self.sent_seq[peer] = seq
            body = json.dumps(req).encode()
            resp = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(PEERS[peer], PORT)
                conn.timeout = APPEND_TIMEOUT_S + size / 50e6  # a catch-up batch gets longer
                if conn.sock is not None:
                    conn.sock.settimeout(conn.timeout)
                conn.request("POST", "/_raft/append", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status == 200:
                    resp = json.loads(data)
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if resp is None and conn is not None:
                conn.close()
                conn = None
            with self.cond:
                if resp is None:
                    self.retry_at[peer] = time.monotonic() + HEARTBEAT_S
                    continue
                if resp["term"] > self.term:
                    self._step_down(resp["term"])
                    self.leader = None
                    continue
                if self.role != "leader" or self.term != term:
                    continue
                self.acked_seq[peer] = max(self.acked_seq[peer], seq)
                self.last_ack[peer] = max(self.last_ack[peer], sent_at)
                if resp["ok"]:
                    m = int(resp["match"])
                    self.match_index[peer] = max(self.match_index[peer], m)
                    self.next_index[peer] = max(self.next_index[peer], m + 1)
                    self._advance_commit()
                else:
                    hint = int(resp.get("hint", nxt - 1))
                    self.next_index[peer] = max(self.match_index[peer] + 1, min(hint, nxt - 1))
                self.cond.notify_all()

    # --- elections ---

    def _ask_votes(self, req: dict) -> list[dict]:
        """Ask every peer at once; return as soon as a majority granted or all answered (a
        paused peer must not hold the election up for the whole timeout)."""
        results: list[dict] = []
        done = threading.Condition()

        def ask(peer: str) -> None:
            d = None
            try:
                c = http.client.HTTPConnection(PEERS[peer], PORT, timeout=VOTE_TIMEOUT_S)
                c.request("POST", "/_raft/vote", json.dumps(req).encode())
                d = json.loads(c.getresponse().read())
                c.close()
            except (OSError, http.client.HTTPException, ValueError):
                pass
            with done:
                results.append(d)
                done.notify_all()

        for p in OTHERS:
            threading.Thread(target=ask, args=(p,), daemon=True).start()

        def enough() -> bool:
            granted = 1 + sum(1 for d in results if d is not None and d["granted"])
            return granted >= MAJORITY or len(results) == len(OTHERS)

        with done:
            done.wait_for(enough, VOTE_TIMEOUT_S + 0.05)
            return [d for d in results if d is not None]

    def _election(self) -> None:
        with self.cond:
            if self.role == "leader":
                return
            self.election_deadline = time.monotonic() + self._timeout()
            term = self.term
            lli, llt = self.last_index(), self.log[-1][0]
        pre = {"term": term + 1, "cand": NODE_ID, "lli": lli, "llt": llt, "pre": True}
        answers = self._ask_votes(pre)
        with self.cond:
            for a in answers:
                if a["term"] > self.term:
                    self._step_down(a["term"])
            if self.term != term or self.role == "leader":
                return
            if self.leader is not None and (
                time.monotonic() - self.last_leader_contact < ELECTION_MIN_S
            ):
                return  # a leader showed up meanwhile
            if 1 + sum(1 for a in answers if a["granted"]) < MAJORITY:
                log(f"pre-vote for term {term + 1} lost: {answers}")
                return
            self.term += 1
            self.voted_for = NODE_ID
            self.store.save_state(self.term, self.voted_for)
            self.role = "candidate"
            self.leader = None
            self.election_deadline = time.monotonic() + self._timeout()
            term = self.term
            lli, llt = self.last_index(), self.log[-1][0]
        real = {"term": term, "cand": NODE_ID, "lli": lli, "llt": llt}
        answers = self._ask_votes(real)
        with self.cond:
            for a in answers:
                if a["term"] > self.term:
                    self._step_down(a["term"])
            if self.term != term or self.role != "candidate":
                return
            if 1 + sum(1 for a in answers if a["granted"]) >= MAJORITY:
                self._become_leader()
            else:
                log(f"election for term {term} lost: {answers}")

    def ticker(self) -> None:
        while True:
            time.sleep(0.01)
            with self.cond:
                now = time.monotonic()
                if self.role == "leader":
                    fresh = 1 + sum(1 for p in OTHERS if now - self.last_ack[p] < CHECK_QUORUM_S)
                    if fresh < MAJORITY:
                        log(f"lost the quorum in term {self.term}")
                        self.role = "follower"
                        self.leader = None
                        self.election_deadline = now + self._timeout()
                        self.cond.notify_all()
                    continue
                if now < self.election_deadline:
                    continue
            try:
                self._election()
            except Exception as exc:
                log(f"election failed: {exc!r}")

    # --- client operations on the leader ---

    def leader_write(self, rid: str, key: str, value: bytes, deadline: float) -> str:
        with self.cond:
            if rid in self.applied_ids:
                return OK
            if self.role != "leader":
                return NOT_LEADER
            term = self.term
            self._append_local([(term, rid, key, value)])
            while rid not in self.applied_ids:
                left = deadline - time.monotonic()
                if left <= 0 or self.role != "leader" or self.term != term:
                    return UNKNOWN
                self.cond.wait(left)
            return OK

    def leader_read(self, key: str, deadline: float) -> tuple[str, bytes | None]:
        with self.cond:
            if self.role != "leader":
                return NOT_LEADER, None
            term = self.term

            def wait(pred) -> str | None:
                while not pred():
                    if self.role != "leader" or self.term != term:
                        return NOT_LEADER
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return UNKNOWN
                    self.cond.wait(left)
                return None

            # the leader knows the full commit index only once an entry of its term commits
            bad = wait(lambda: self.log[self.commit][0] == term)
            if bad:
                return bad, None
            read_index = self.commit
            self.read_seq += 1
            need = self.read_seq
            self.cond.notify_all()
            bad = wait(lambda: 1 + sum(1 for p in OTHERS if self.acked_seq[p] >= need) >= MAJORITY)
            if bad:
                return bad, None
            bad = wait(lambda: self.applied >= read_index)
            if bad:
                return bad, None
            return OK, self.kv.get(key)

    def leader_fresh(self) -> bool:
        """This host leads, or heard from its leader within 3 heartbeats."""
        with self.cond:
            return self.role == "leader" or (
                self.leader is not None
                and time.monotonic() - self.last_leader_contact < 3 * HEARTBEAT_S
            )

    def current_leader(self) -> str | None:
        with self.cond:
            return NODE_ID if self.role == "leader" else self.leader

    def wait_leader_change(self, old: str | None, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(
                lambda: (NODE_ID if self.role == "leader" else self.leader) != old, timeout
            )


RAFT: Raft


def forward(
    peer: str, path: str, body: bytes, budget: float, relay: bool = False
) -> tuple[str, int, dict, bytes]:
    """('undelivered' | 'maybe' | 'answered', status, headers, body)."""
    timeout = max(0.05, min(budget, FORWARD_ATTEMPT_S))
    conn = http.client.HTTPConnection(PEERS[peer], PORT, timeout=timeout)
    headers = {"X-Budget-Ms": str(int((timeout - 0.02) * 1000)), "Content-Length": str(len(body))}
    if relay:
        headers["X-Relay"] = "1"
    try:
        try:
            conn.connect()
        except OSError:
            return "undelivered", 0, {}, b""
        try:
            conn.request("POST", path, body, headers)
            r = conn.getresponse()
            data = r.read()
            return "answered", r.status, dict(r.getheaders()), data
        except (OSError, http.client.HTTPException):
            return "maybe", 0, {}, b""
    finally:
        conn.close()


def route(attempt: int, leader: str) -> tuple[str, bool]:
    """Where an attempt goes: the leader, or, while this host has not heard from the
    leader lately (a partition may cut only the link between the two), every other try
    through another peer that relays it."""
    relays = [p for p in OTHERS if p != leader]
    if RAFT.leader_fresh() or not relays or attempt % 2:
        return leader, False
    return relays[(attempt // 2) % len(relays)], True


Local = Callable[[float], tuple[str, int, bytes]]


def serve(path: str, body: bytes, local: Local) -> tuple[int, bytes, bool]:
    """Run a client request at the leader within the client's budget, retrying across
    failovers: (status 200/404, or 0 when it failed; body; whether it may have been done)."""
    deadline = time.monotonic() + CLIENT_BUDGET_S
    maybe = False
    hint: str | None = None
    attempt = 0
    while (left := deadline - time.monotonic()) > 0.01:
        leader = hint or RAFT.current_leader()
        hint = None
        if leader == NODE_ID:
            out, status, data = local(deadline)
            if out == OK:
                return status, data, maybe
            maybe |= out == UNKNOWN
            RAFT.wait_leader_change(NODE_ID, 0.02)
            continue
        if leader is None:
            RAFT.wait_leader_change(None, min(left, 0.05))
            continue
        target, relay = route(attempt, leader)
        attempt += 1
        how, status, headers, data = forward(target, path, body, left, relay)
        if how == "answered" and status in (200, 404):
            return status, data, maybe
        if how == "answered" and status == 409:  # not the leader, and not done
            h = headers.get("X-Leader") or None
            if not relay and h in PEERS and h != leader:
                hint = h
            elif not relay:
                RAFT.wait_leader_change(leader, min(left, 0.03))
            continue
        maybe |= how != "undelivered"
        time.sleep(0.02)
    return 0, b"", maybe


def client_write(key: str, value: bytes) -> int:
    rid = uuid.uuid4().hex
    body = json.dumps({"id": rid, "k": key, "v": base64.b64encode(value).decode()}).encode()

    def local(deadline: float) -> tuple[str, int, bytes]:
        return RAFT.leader_write(rid, key, value, deadline), 200, b""

    status, _, maybe = serve("/_raft/write", body, local)
    if status == 200:
        return 200
    return 500 if maybe else 503  # 503 only when no attempt can have been put in a log


def client_read(key: str) -> tuple[int, bytes]:
    def local(deadline: float) -> tuple[str, int, bytes]:
        out, value = RAFT.leader_read(key, deadline)
        return out, 404 if value is None else 200, value or b""

    status, data, _ = serve("/_raft/read", json.dumps({"k": key}).encode(), local)
    return (status, data) if status else (503, b"")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(100)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1000) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += n
                if total > 4 * MAX_VALUE_BYTES:
                    return None
                chunks.append(self.rfile.read(n))
                self.rfile.readline(10)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > 4 * MAX_VALUE_BYTES + 4096:
            return None
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _key(self) -> str | None:
        if not self.path.startswith("/kv/"):
            return None
        key = self.path[4:]
        return key if KEY_RE.fullmatch(key) else None

    def do_GET(self) -> None:
        key = self._key()
        if key is None:
            self._send(404 if not self.path.startswith("/kv/") else 400)
            return
        status, data = client_read(key)
        self._send(status, data)

    def do_PUT(self) -> None:
        key = self._key()
        if key is None:
            self.close_connection = True
            self._send(404 if not self.path.startswith("/kv/") else 400)
            return
        value = self._body()
        if value is None or len(value) > MAX_VALUE_BYTES:
            self.close_connection = True
            self._send(413)
            return
        self._send(client_write(key, value))

    def _relay(self, body: bytes, budget: float) -> None:
        """Pass a peer's request on to the leader this host can reach (409: not done)."""
        leader = RAFT.current_leader()
        if leader is None or not RAFT.leader_fresh():
            self._send(409)
            return
        how, status, _, data = forward(leader, self.path, body, budget - 0.02)
        if how == "answered":
            self._send(status, data)
        else:
            self._send(409 if how == "undelivered" else 504)

    def do_POST(self) -> None:
        body = self._body() or b""
        budget = int(self.headers.get("X-Budget-Ms") or 400) / 1000.0
        deadline = time.monotonic() + max(0.0, budget)
        if self.path == "/_raft/append":
            self._send(200, json.dumps(RAFT.on_append(json.loads(body))).encode())
        elif self.path == "/_raft/vote":
            self._send(200, json.dumps(RAFT.on_vote(json.loads(body))).encode())
        elif self.headers.get("X-Relay") and RAFT.current_leader() != NODE_ID:
            self._relay(body, budget)
        elif self.path == "/_raft/write":
            req = json.loads(body)
            out = RAFT.leader_write(req["id"], req["k"], base64.b64decode(req["v"]), deadline)
            if out == OK:
                self._send(200)
            elif out == NOT_LEADER:
                self._send(409, headers={"X-Leader": RAFT.current_leader() or ""})
            else:
                self._send(504)
        elif self.path == "/_raft/read":
            out, value = RAFT.leader_read(json.loads(body)["k"], deadline)
            if out == OK and value is None:
                self._send(404)
            elif out == OK:
                self._send(200, value)
            elif out == NOT_LEADER:
                self._send(409, headers={"X-Leader": RAFT.current_leader() or ""})
            else:
                self._send(504)
        else:
            self._send(405)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main() -> None:
    global RAFT
    RAFT = Raft()
    for p in OTHERS:
        threading.Thread(target=RAFT.replicator, args=(p,), daemon=True).start()
    threading.Thread(target=RAFT.ticker, daemon=True).start()
    Server((BIND, PORT), Handler).serve_forever()


if __name__ == "__main__":
    main()
