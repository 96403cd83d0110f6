"""The shop's application: orders of a user, read and placed over HTTP (README.md).

    GET  /health                   200 ok
    GET  /users/{id}/orders        200 {"user": id, "orders": [{"id", "item", "qty"}, ...]}
    POST /users/{id}/orders        {"item": item id, "qty": n} -> 201 {"id": order id}

Runs with /usr/bin/python3 (standard library + Debian's python3-psycopg).
"""

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

DSN = (
    f"host={os.environ['DB_HOST']} port={os.environ['DB_PORT']} dbname={os.environ['DB_NAME']} "
    f"user={os.environ['DB_USER']} password={os.environ['DB_PASSWORD']}"
)
ORDERS = re.compile(r"^/users/(\d{1,9})/orders$")
LOCK = threading.Lock()  # one request at a time: the database must not be overwhelmed


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
        with LOCK, psycopg.connect(DSN) as conn:
            if conn.execute("SELECT 1 FROM users WHERE id = %s", (user,)).fetchone() is None:
                return self.reply(404, {"error": "no such user"})
            rows = conn.execute(
                "SELECT id, item_id, qty FROM orders WHERE user_id = %s ORDER BY id", (user,)
            ).fetchall()
            orders = []
            for order_id, item_id, qty in rows:
                (name,) = conn.execute(
                    "SELECT name FROM items WHERE id = %s", (item_id,)
                ).fetchone()
                orders.append({"id": order_id, "item": name, "qty": qty})
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
        user = int(m.group(1))
        with LOCK, psycopg.connect(DSN) as conn:
            for table, key in (("users", user), ("items", item)):
                if conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (key,)).fetchone() is None:
                    return self.reply(404, {"error": f"no such {table[:-1]}"})
            (order_id,) = conn.execute(
                "INSERT INTO orders (user_id, item_id, qty) VALUES (%s, %s, %s) RETURNING id",
                (user, item, qty),
            ).fetchone()
        self.reply(201, {"id": order_id})

    def log_message(self, fmt, *args):
        with open(os.path.join(os.environ["DATA_DIR"], "access.log"), "a") as log:
            log.write(fmt % args + "\n")
            log.flush()
            os.fsync(log.fileno())


ThreadingHTTPServer(("0.0.0.0", int(os.environ["APP_PORT"])), Handler).serve_forever()
