"""Each user's visit count in redis on the state host (STATE: its name=address, port
6379), one connection per thread, spoken in RESP over a plain socket (stdlib only)."""

import os
import socket
import threading

ADDRESS = (os.environ["STATE"].split(",")[0].split("=", 1)[1], 6379)


class RedisStore:
    def __init__(self) -> None:
        self._local = threading.local()

    def _conn(self) -> tuple[socket.socket, object]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            sock = socket.create_connection(ADDRESS, timeout=2.0)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self._local.conn = (sock, sock.makefile("rb"))
        return conn

    def _call(self, *args: str) -> bytes | None:
        req = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
        )
        for attempt in (0, 1):
            sock, rfile = self._conn()
            try:
                sock.sendall(req)
                return self._reply(rfile)
            except OSError:
                self._local.conn = None
                sock.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _reply(rfile) -> bytes | None:  # type: ignore[no-untyped-def]
        line = rfile.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b":", b"+"):
            return rest
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else rfile.read(n + 2)[:-2]
        raise RuntimeError(f"unexpected redis reply {line!r}")

    def visit(self, user: str) -> int:
        return int(self._call("INCR", f"visits:{user}") or 0)

    def get(self, user: str) -> int:
        return int(self._call("GET", f"visits:{user}") or 0)


STORE = RedisStore()
