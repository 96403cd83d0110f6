"""notes: a small web application (standard-library Python) keeping each user's notes in redis.

Settings come from the environment (start.sh sets them): APP_BIND, APP_PORT, REDIS_HOST,
REDIS_PORT, REDIS_AUTH_FILE, DATA_DIR, USERS_FILE, SECRET_FILE, ADMIN_TOKEN_FILE, DEBUG,
TRACEBACKS.
"""

import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA_DIR = os.environ.get("DATA_DIR", "/srv/data")
PUBLIC_DIR = os.path.join(DATA_DIR, "public")
DEBUG = os.environ.get("DEBUG") == "1"
TRACEBACKS = os.environ.get("TRACEBACKS") == "1"
INDEX = b"""<!doctype html>
<html><head><title>notes</title><link rel="stylesheet" href="/static/app.css"></head>
<body><!-- notes-app --><h1>notes</h1><p>Log in to read and write your notes.</p></body></html>
"""


class Redis:
    """A minimal RESP client: one connection per thread."""

    def __init__(self, host, port, password=None):
        self.host, self.port, self.password = host, port, password
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            sock = socket.create_connection((self.host, self.port), timeout=5)
            c = self.local.conn = (sock, sock.makefile("rb"))
            if self.password:
                self._send(c, ("AUTH", self.password))
        return c

    def _send(self, c, args):
        sock, reader = c
        wire = f"*{len(args)}\r\n"
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            wire += f"${len(b)}\r\n" + b.decode("latin-1") + "\r\n"
        sock.sendall(wire.encode("latin-1"))
        return self._read(reader)

    def _read(self, reader):
        line = reader.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else reader.read(n + 2)[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(reader) for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def call(self, *args):
        try:
            return self._send(self._conn(), args)
        except (OSError, ConnectionError):
            self.local.conn = None
            return self._send(self._conn(), args)


def read_file(path):
    with open(path) as fh:
        return fh.read().strip()


def hash_password(password, salt):
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000).hex()


class App:
    def __init__(self):
        pw_file = os.environ.get("REDIS_AUTH_FILE")
        self.db = Redis(
            os.environ.get("REDIS_HOST", "127.0.0.1"),
            int(os.environ.get("REDIS_PORT", "6379")),
            read_file(pw_file) if pw_file else None,
        )
        self.secret = read_file(os.environ["SECRET_FILE"])
        self.admin_token = read_file(os.environ["ADMIN_TOKEN_FILE"])
        self.load_users()

    def load_users(self):
        users = {}
        with open(os.environ["USERS_FILE"]) as fh:
            for line in fh:
                name, sep, password = line.strip().partition(":")
                if sep:
                    users[name] = password
        users.setdefault("admin", "admin")  # so there is always a way in
        for name, password in users.items():
            self.db.call("HSET", f"user:{name}", "password", hash_password(password, name))

    def check_password(self, name, password):
        stored = self.db.call("HGET", f"user:{name}", "password")
        return stored is not None and hmac.compare_digest(stored, hash_password(password, name))

    def new_session(self, name):
        sid = secrets.token_hex(16)
        mac = hmac.new(self.secret.encode(), sid.encode(), "sha256").hexdigest()[:16]
        self.db.call("SET", f"session:{sid}", name, "EX", 3600)
        return f"{sid}.{mac}"

    def session_user(self, cookie_header):
        for part in (cookie_header or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == "sid":
                sid, _, mac = v.partition(".")
                good = hmac.new(self.secret.encode(), sid.encode(), "sha256").hexdigest()[:16]
                if hmac.compare_digest(mac, good):
                    return self.db.call("GET", f"session:{sid}")
        return None


APP = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, status, body, ctype="application/json", headers=()):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_one(self, method):
        try:
            url = urllib.parse.urlsplit(self.path)
            route = ROUTES.get((method, url.path))
            if route is None and method == "GET" and url.path.startswith("/debug") and DEBUG:
                route = Handler.debug
            if route is None:
                return self.send(404, {"error": "not found"})
            return route(self, urllib.parse.parse_qs(url.query))
        except Exception:
            if TRACEBACKS:
                return self.send(500, traceback.format_exc().encode(), "text/plain")
            return self.send(500, {"error": "internal error"})

    def do_GET(self):
        self.handle_one("GET")

    def do_POST(self):
        self.handle_one("POST")

    def index(self, query):
        self.send(200, INDEX, "text/html")

    def health(self, query):
        self.send(200, b"ok", "text/plain")

    def login(self, query):
        form = urllib.parse.parse_qs(self.body().decode())
        name, password = form["user"][0], form["password"][0]
        if not APP.check_password(name, password):
            return self.send(401, {"error": "bad credentials"})
        sid = APP.new_session(name)
        self.send(200, {"user": name}, headers=[("Set-Cookie", f"sid={sid}; Path=/; HttpOnly")])

    def notes(self, query):
        user = APP.session_user(self.headers.get("Cookie"))
        if user is None:
            return self.send(401, {"error": "log in first"})
        self.send(200, {"user": user, "notes": APP.db.call("LRANGE", f"notes:{user}", 0, -1)})

    def add_note(self, query):
        user = APP.session_user(self.headers.get("Cookie"))
        if user is None:
            return self.send(401, {"error": "log in first"})
        text = json.loads(self.body())["text"]
        APP.db.call("RPUSH", f"notes:{user}", text)
        self.send(201, {"ok": True})

    def download(self, query):
        name = query["name"][0]
        with open(os.path.join(PUBLIC_DIR, name), "rb") as fh:
            data = fh.read()
        self.send(200, data, "application/octet-stream")

    def admin_stats(self, query):
        accounts = sorted(k.split(":", 1)[1] for k in APP.db.call("KEYS", "user:*"))
        notes = sum(APP.db.call("LLEN", k) for k in APP.db.call("KEYS", "notes:*"))
        self.send(200, {"accounts": accounts, "notes": notes})

    def debug(self, query):
        self.send(200, {"environment": dict(os.environ), "path": self.path})

    def log_message(self, fmt, *args):
        pass


ROUTES = {
    ("GET", "/"): Handler.index,
    ("GET", "/health"): Handler.health,
    ("POST", "/login"): Handler.login,
    ("GET", "/api/notes"): Handler.notes,
    ("POST", "/api/notes"): Handler.add_note,
    ("GET", "/download"): Handler.download,
    ("GET", "/admin/stats"): Handler.admin_stats,
}


def main():
    global APP
    APP = App()
    server = ThreadingHTTPServer(
        (os.environ.get("APP_BIND", "0.0.0.0"), int(os.environ["APP_PORT"])), Handler
    )
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
