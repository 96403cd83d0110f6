"""The shop's application (README.md), without its bottlenecks: one query per read, a
bounded pool of reused connections, no lock around requests, no synchronous log.

Runs with /usr/bin/python3 (standard library + Debian's python3-psycopg).
"""

import json
import os
import queue
import re
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

DSN = (
    f"host={os.environ['DB_HOST']} port={os.environ['DB_PORT']} dbname={os.environ['DB_NAME']} "
    f"user={os.environ['DB_USER']} password={os.environ['DB_PASSWORD']}"
)
ORDERS = re.compile(r"^/users/(\d{1,9})/orders$")
POOL_SIZE = 8
READ = """
SELECT u.id, o.id, i.name, o.qty
FROM users u
LEFT JOIN orders o ON o.user_id = u.id
LEFT JOIN items i ON i.id = o.item_id
WHERE u.id = %s
ORDER BY o.id
"""
PLACE = """
INSERT INTO orders (user_id, item_id, qty)
SELECT u.id, i.id, %s FROM users u, items i WHERE u.id = %s AND i.id = %s
RETURNING id
"""


class Pool:
    """Up to ``size`` autocommit connections, made on first use and reused; a broken one
    is dropped and replaced."""

    def __init__(self, size):
        self.free = queue.LifoQueue()
        for _ in range(size):
            self.free.put(None)

    @contextmanager
    def connection(self):
        conn = self.free.get()
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(DSN, autocommit=True)
            yield conn
        except psycopg.OperationalError:
            if conn is not None:
                conn.close()
            conn = None
            raise
        finally:
            self.free.put(conn)


POOL = Pool(POOL_SIZE)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, "ok")
        m = ORDERS.match(self.path)
        if not m:
            return self.reply(404, {"error": "not found"})
        user = int(m.group(1))
        with POOL.connection() as conn:
            rows = conn.execute(READ, (user,)).fetchall()
        if not rows:
            return self.reply(404, {"error": "no such user"})
        orders = [{"id": o, "item": name, "qty": qty} for _, o, name, qty in rows if o is not None]
        self.reply(200, {"user": user, "orders": orders})

    def do_POST(self):
        m = ORDERS.match(self.path)
        if not m:
            return self.reply(404, {"error": "not found"})
        try:
            doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            item, qty = int(doc["item"]), int(doc["qty"])
        except (ValueError, KeyError, TypeError):
            return self.reply(400, {"error": 'expected {"item": id, "qty": n}'})
        if qty <= 0:
            return self.reply(400, {"error": "qty must be positive"})
        with POOL.connection() as conn:
            row = conn.execute(PLACE, (qty, int(m.group(1)), item)).fetchone()
        if row is None:
            return self.reply(404, {"error": "no such user or item"})
        self.reply(201, {"id": row[0]})

    def log_message(self, fmt, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 1024


def main(handler=Handler):
    Server(("0.0.0.0", int(os.environ["APP_PORT"])), handler).serve_forever()


if __name__ == "__main__":
    main()
