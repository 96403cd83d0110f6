"""Orders over HTTP with PostgreSQL doing the work: each read is one statement that returns
the finished JSON document, each write one statement that checks and inserts. Every server
thread keeps its own connection (threading.local), reconnecting after an error."""

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

CONNINFO = {k.lower(): os.environ[f"DB_{k}"] for k in ("HOST", "PORT", "NAME", "USER", "PASSWORD")}
CONNINFO["dbname"] = CONNINFO.pop("name")
PATH = re.compile(r"/users/([0-9]{1,9})/orders")
LOCAL = threading.local()

READ_SQL = """
SELECT json_build_object('user', u.id, 'orders', coalesce(
    (SELECT json_agg(json_build_object('id', o.id, 'item', i.name, 'qty', o.qty) ORDER BY o.id)
     FROM orders o JOIN items i ON i.id = o.item_id WHERE o.user_id = u.id), '[]'))::text
FROM users u WHERE u.id = %s
"""
WRITE_SQL = """
WITH ok AS (SELECT 1 FROM users WHERE id = %(u)s AND EXISTS (SELECT 1 FROM items WHERE id = %(i)s))
INSERT INTO orders (user_id, item_id, qty) SELECT %(u)s, %(i)s, %(q)s FROM ok
RETURNING json_build_object('id', id)::text
"""


def query(sql, args):
    conn = getattr(LOCAL, "conn", None)
    if conn is None or conn.closed:
        conn = LOCAL.conn = psycopg.connect(autocommit=True, **CONNINFO)
    try:
        return conn.execute(sql, args).fetchone()
    except psycopg.OperationalError:
        conn.close()
        raise


class Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self.send(200, '"ok"')
        m = PATH.fullmatch(self.path)
        row = query(READ_SQL, (int(m.group(1)),)) if m else None
        self.send(200, row[0]) if row else self.send(404, '{"error": "not found"}')

    def do_POST(self):
        m = PATH.fullmatch(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not m:
            return self.send(404, '{"error": "not found"}')
        try:
            doc = json.loads(raw)
            args = {"u": int(m.group(1)), "i": int(doc["item"]), "q": int(doc["qty"])}
            if args["q"] < 1:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return self.send(400, '{"error": "want {\\"item\\": id, \\"qty\\": n > 0}"}')
        row = query(WRITE_SQL, args)
        self.send(201, row[0]) if row else self.send(404, '{"error": "no such user or item"}')

    def log_message(self, *args):
        return


ThreadingHTTPServer.request_queue_size = 512
ThreadingHTTPServer(("", int(os.environ["APP_PORT"])), Shop).serve_forever()
