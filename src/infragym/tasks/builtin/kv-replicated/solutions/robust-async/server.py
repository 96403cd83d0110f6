"""A replicated key-value service on one event loop: ABD registers over majority quorums,
peers talking a small line protocol over one kept connection each.

A correct solution built unlike the other references (a thread per request, HTTP between
peers): one ``asyncio`` loop per host serves the clients' HTTP/1.1 (kept alive) and the
peers' messages on the same port; a connection whose first line is ``ABD/1 <node>`` is a
peer's, and carries one JSON object per line, each with an id its answer repeats, so many
calls share one connection.

Every key is a register holding a value stamped ``(counter, node id)``; a replica keeps
the value with the largest stamp it has seen, appended to a log in ``DATA_DIR`` and
fsync'd before it answers (a crash loses nothing it acknowledged).

- write: ask a majority for their stamps, pick ``(max counter + 1, my id)``, store the
  value on a majority, then answer 204;
- read: ask a majority for (stamp, value), take the largest; when some replica of that
  majority lags, store it on a majority first; then answer.

Any two majorities intersect, so reads and writes are linearizable. Only the first
majority is awaited; a peer that does not answer within ``PEER_TIMEOUT_S`` is not waited
for. A peer connection that stays silent past a call's deadline is dropped and opened
afresh on the next call: after a partition heals, a connection whose retransmissions
backed off would otherwise stay silent for seconds.

503 only when nothing was stored (no majority answered the stamp query); 500 when a value
may have reached some replicas.

Run with the contract's environment: NODE_ID, PEERS (id=address,...), PORT, DATA_DIR.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

Stamp = tuple[int, str]
Entry = tuple[Stamp, str | None]
ZERO: Stamp = (0, "")
PEER_TIMEOUT_S = 0.4
KEY_RE = re.compile(r"[A-Za-z0-9._~-]+")
MAX_VALUE_BYTES = 1 << 20
MAX_HEAD = 16 * 1024
LINE_LIMIT = 8 * MAX_VALUE_BYTES  # a peer's line: a value, JSON-escaped
OPEN_TIMEOUT_S = 0.5  # a connect is tried afresh after this (SYN retries back off)
MAGIC = b"ABD/1 "
COMPACT_EVERY = 20_000
REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
           503: "Service Unavailable"}  # fmt: skip


class Replica:
    """This node's copy of every register, durable in an fsync'd append-only log (one
    thread touches it: the event loop's)."""

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, "abd.log")
        self.entries: dict[str, Entry] = {}
        self.appended = 0
        good = 0  # bytes of whole records
        try:
            with open(self.path, "rb") as fh:
                for line in fh:
                    try:
                        if not line.endswith(b"\n"):
                            raise ValueError("torn")
                        k, c, n, v = json.loads(line)
                    except ValueError:
                        break  # a torn last record was never acknowledged
                    self._keep(k, (int(c), str(n)), v)
                    self.appended += 1
                    good += len(line)
            # cut a torn tail off, or the next record would be glued to it and lost
            # with everything after it at the next start
            os.truncate(self.path, good)
        except FileNotFoundError:
            pass
        self.log = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _keep(self, key: str, stamp: Stamp, value: str | None) -> bool:
        if stamp <= self.entries.get(key, (ZERO, None))[0]:
            return False
        self.entries[key] = (stamp, value)
        return True

    def get(self, key: str) -> Entry:
        return self.entries.get(key, (ZERO, None))

    def put(self, key: str, stamp: Stamp, value: str | None) -> None:
        """Keep ``value`` if its stamp is newer; on disk before this returns."""
        if stamp <= self.get(key)[0]:
            return
        self.log.write(json.dumps([key, stamp[0], stamp[1], value], ensure_ascii=False) + "\n")
        self.log.flush()
        os.fsync(self.log.fileno())
        self._keep(key, stamp, value)
        self.appended += 1
        if self.appended > COMPACT_EVERY + 2 * len(self.entries):
            self._compact()

    def _compact(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            for key, ((c, n), v) in self.entries.items():
                fh.write(json.dumps([key, c, n, v], ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.log.close()
        self.log = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self.appended = len(self.entries)


class Link:
    """One kept connection to a peer, many calls in flight on it, answers matched by id."""

    def __init__(self, me: str, address: str, port: int) -> None:
        self.me, self.address, self.port = me, address, port
        self.writer: asyncio.StreamWriter | None = None
        self.opening: asyncio.Future[None] | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.heard = 0.0  # when this connection last delivered an answer

    async def _open(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.address, self.port, limit=LINE_LIMIT), OPEN_TIMEOUT_S
        )
        writer.write(MAGIC + self.me.encode() + b"\n")
        self.writer, self.heard = writer, time.monotonic()
        asyncio.get_running_loop().create_task(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                if self.writer is writer:
                    self.heard = time.monotonic()
                fut = self.pending.pop(msg.pop("i"), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except (OSError, ValueError, KeyError, asyncio.IncompleteReadError):
            pass
        finally:
            self._drop(writer)

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        """Forget a connection (once): its calls in flight fail now."""
        writer.close()
        if self.writer is writer:
            self.writer = None
            pending, self.pending = self.pending, {}
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("peer connection closed"))

    async def call(self, msg: dict[str, Any], deadline: float) -> Any:
        loop = asyncio.get_running_loop()
        if self.writer is None:
            if self.opening is None:
                self.opening = loop.create_task(self._open())
                self.opening.add_done_callback(self._opened)
            await asyncio.wait_for(asyncio.shield(self.opening), deadline - time.monotonic())
        writer = self.writer
        if writer is None:
            raise ConnectionError("no connection")
        self.next_id += 1
        i = self.next_id
        fut: asyncio.Future[Any] = loop.create_future()
        self.pending[i] = fut
        sent = time.monotonic()
        writer.write(json.dumps({"i": i, **msg}, ensure_ascii=False).encode() + b"\n")
        try:
            return await asyncio.wait_for(fut, deadline - sent)
        except TimeoutError:
            self.pending.pop(i, None)
            if self.writer is writer and self.heard < sent:
                self._drop(writer)  # silent since this call: a partition or a backed-off link
            raise

    def _opened(self, task: asyncio.Future[None]) -> None:
        self.opening = None
        if not task.cancelled():
            task.exception()  # retrieved: the caller saw it


class Node:
    """A replica and a coordinator: runs the quorum calls of ABD."""

    def __init__(self, me: str, peers: dict[str, str], port: int, replica: Replica) -> None:
        self.me = me
        self.replica = replica
        self.links = [Link(me, a, port) for n, a in peers.items() if n != me]
        self.majority = len(peers) // 2 + 1
        self.issued: dict[str, int] = {}

    async def _quorum(self, local: Callable[[], Any], msg: dict[str, Any]) -> list[Any] | None:
        """Answers of the first majority, this node's included; None if no majority."""
        deadline = time.monotonic() + PEER_TIMEOUT_S
        calls = {asyncio.ensure_future(link.call(msg, deadline)) for link in self.links}
        for c in calls:
            c.add_done_callback(_retrieve)
        await asyncio.sleep(0)  # the calls go out (on a kept connection) before the disk
        results: list[Any] = []
        try:  # while the peers' answers travel
            results.append(local())
        except OSError as exc:  # a full or failing disk: this replica does not count
            print(f"local replica failed: {exc!r}", file=sys.stderr, flush=True)
        pending = calls
        while pending and len(results) < self.majority:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            results.extend(d.result() for d in done if not d.cancelled() and not d.exception())
        return results if len(results) >= self.majority else None

    async def query(self, key: str) -> list[Entry] | None:
        answers = await self._quorum(lambda: self.replica.get(key), {"q": key})
        if answers is None:
            return None
        out: list[Entry] = []
        for a in answers:
            out.append(a if isinstance(a, tuple) else ((int(a["c"]), str(a["n"])), a["v"]))
        return out

    async def store(self, key: str, stamp: Stamp, value: str | None) -> bool:
        def local() -> bool:
            self.replica.put(key, stamp, value)
            return True

        msg = {"s": key, "c": stamp[0], "n": stamp[1], "v": value}
        return await self._quorum(local, msg) is not None

    async def write(self, key: str, value: str) -> int:
        entries = await self.query(key)
        if entries is None:
            return 503  # nothing was stored anywhere
        c = max(max(s for s, _ in entries)[0], self.issued.get(key, 0)) + 1
        self.issued[key] = c  # never the same stamp twice from this node
        return 204 if await self.store(key, (c, self.me), value) else 500

    async def read(self, key: str) -> tuple[int, str | None]:
        entries = await self.query(key)
        if entries is None:
            return 503, None
        stamp, value = max(entries, key=lambda e: e[0])
        if any(s != stamp for s, _ in entries) and not await self.store(key, stamp, value):
            return 503, None
        return (404, None) if value is None else (200, value)

    def answer_peer(self, msg: dict[str, Any]) -> dict[str, Any]:
        if "q" in msg:
            (c, n), v = self.replica.get(msg["q"])
            return {"i": msg["i"], "c": c, "n": n, "v": v}
        self.replica.put(msg["s"], (int(msg["c"]), str(msg["n"])), msg["v"])
        return {"i": msg["i"]}


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _response(status: int, body: bytes = b"", close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + body


class Server:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            start = await reader.readexactly(len(MAGIC))  # no HTTP request is shorter
            if start == MAGIC:
                await reader.readuntil(b"\n")  # the peer's name: for the log, unused
                await self._peer(reader, writer)
            else:
                await self._http(start, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception as exc:  # never take the loop down with one connection
            print(f"connection failed: {exc!r}", file=sys.stderr, flush=True)
        finally:
            writer.close()

    async def _peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(json.dumps(self.node.answer_peer(json.loads(line))).encode() + b"\n")

    async def _http(
        self, start: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            head = start + await reader.readuntil(b"\r\n\r\n")
            start = b""
            if len(head) > MAX_HEAD:
                writer.write(_response(400, b"header too large\n", close=True))
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ")
            except ValueError:
                writer.write(_response(400, b"bad request line\n", close=True))
                return
            headers = {}
            for h in lines[1:]:
                name, sep, val = h.partition(":")
                if sep:
                    headers[name.strip().lower()] = val.strip()
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_VALUE_BYTES or "transfer-encoding" in headers:
                writer.write(_response(413 if length > 0 else 400, b"bad body\n", close=True))
                return
            body = await reader.readexactly(length) if length else b""
            status, out = await self._route(method, target, body)
            writer.write(_response(status, out, close))
            if close:
                await writer.drain()
                return

    async def _route(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        parts = target.split("?", 1)[0].split("/")
        if len(parts) != 3 or parts[1] != "kv" or not KEY_RE.fullmatch(parts[2]):
            return 404, b"no such resource\n"
        key = parts[2]
        handlers: dict[str, Callable[[], Awaitable[tuple[int, bytes]]]] = {
            "GET": lambda: self._get(key),
            "PUT": lambda: self._put(key, body),
        }
        if method not in handlers:
            return 405, b"GET or PUT\n"
        try:
            return await handlers[method]()
        except Exception as exc:  # an answer, always: the outcome is unknown
            print(f"{method} {target}: {exc!r}", file=sys.stderr, flush=True)
            return 500, b"internal error: outcome unknown\n"

    async def _get(self, key: str) -> tuple[int, bytes]:
        status, value = await self.node.read(key)
        if status == 200 and value is not None:
            return 200, value.encode("utf-8")
        return status, b"no such key\n" if status == 404 else b"no majority reachable\n"

    async def _put(self, key: str, body: bytes) -> tuple[int, bytes]:
        try:
            value = body.decode("utf-8")
        except UnicodeDecodeError:
            return 400, b"values must be UTF-8 text\n"
        status = await self.node.write(key, value)
        return status, b"" if status == 204 else b"write not confirmed by a majority\n"


async def main() -> None:
    me = os.environ["NODE_ID"]
    peers = dict(p.split("=", 1) for p in os.environ["PEERS"].split(",") if p)
    port = int(os.environ.get("PORT", "8080"))
    if me not in peers:
        sys.exit(f"NODE_ID {me} is not one of PEERS {sorted(peers)}")
    node = Node(me, peers, port, Replica(os.environ.get("DATA_DIR", "/srv/data")))
    server = await asyncio.start_server(
        Server(node).serve, "0.0.0.0", port, backlog=512, limit=LINE_LIMIT
    )
    print(f"{me}: serving on :{port}, peers {peers}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
