"""notes behind nginx: the public routes on a unix socket (nginx's only way in), the admin
route alone on 127.0.0.1:APP_PORT, behind its token. Uses server.py's storage and sessions."""

import hmac
import json
import os
import socket
import socketserver
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

import server

FAIL_LIMIT, FAIL_WINDOW_S = 10, 300


class UnixRedis(server.Redis):
    """server.Redis over a unix socket or TCP, logging in as an ACL user."""

    def __init__(self, where, user, password):
        super().__init__(where, 0, None)
        self.user, self.secret = user, password

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            if self.host.startswith("/"):
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(self.host)
            else:
                host, port = self.host.rsplit(":", 1)
                sock = socket.create_connection((host, int(port)), timeout=5)
            c = self.local.conn = (sock, sock.makefile("rb"))
            self._send(c, ("AUTH", self.user, self.secret))
        return c


class Store(server.App):
    def __init__(self, db):
        self.db = db
        self.secret = server.read_file(os.environ["SECRET_FILE"])
        self.admin_token = server.read_file(os.environ["ADMIN_TOKEN_FILE"])
        with open(os.environ["USERS_FILE"]) as fh:
            pairs = [line.rstrip("\n").partition(":") for line in fh]
        accounts = {user: pw for user, sep, pw in pairs if sep and user}
        stale = [k for k in db.call("KEYS", "user:*") if k[5:] not in accounts]
        if stale:
            db.call("DEL", *stale)
        for user, pw in accounts.items():
            db.call("HSET", f"user:{user}", "password", server.hash_password(pw, user))

    def attempt(self, user, password):
        """'ok', 'bad' or 'locked': failures counted in redis per account."""
        key = f"failures:{user}"
        if int(self.db.call("GET", key) or 0) >= FAIL_LIMIT:
            return "locked"
        if self.check_password(user, password):
            return "ok"
        if self.db.call("INCR", key) == 1:
            self.db.call("EXPIRE", key, FAIL_WINDOW_S)
        return "bad"


class Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version, sys_version = "notes", ""
    store = None

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json", extra=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (("Content-Type", ctype), ("Content-Length", str(len(data))), *extra):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def dispatch(self, table):
        try:
            url = urllib.parse.urlsplit(self.path)
            fn = table.get((self.command, url.path))
            if fn is None:
                return self.reply(404, {"error": "not found"})
            return fn(self, urllib.parse.parse_qs(url.query))
        except Exception as exc:
            print(f"error on {self.command} {self.path}: {exc!r}", file=sys.stderr)
            return self.reply(500, {"error": "internal error"})

    def payload(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(n, 1 << 20))

    def user(self):
        return self.store.session_user(self.headers.get("Cookie"))


class Public(Base):
    def do_GET(self):
        self.dispatch(PUBLIC)

    def do_POST(self):
        self.dispatch(PUBLIC)

    def address_string(self):
        return "nginx"

    def index(self, q):
        self.reply(200, server.INDEX, "text/html")

    def health(self, q):
        self.reply(200, b"ok", "text/plain")

    def login(self, q):
        form = urllib.parse.parse_qs(self.payload().decode("utf-8", "replace"))
        user, pw = form.get("user", [""])[0], form.get("password", [""])[0]
        verdict = self.store.attempt(user, pw) if user and pw else "bad"
        if verdict == "locked":
            return self.reply(429, {"error": "too many failed logins"})
        if verdict == "bad":
            return self.reply(401, {"error": "bad credentials"})
        cookie = f"sid={self.store.new_session(user)}; Path=/; HttpOnly; Secure; SameSite=Strict"
        self.reply(200, {"user": user}, extra=[("Set-Cookie", cookie)])

    def notes(self, q):
        user = self.user()
        if user is None:
            return self.reply(401, {"error": "log in first"})
        self.reply(
            200, {"user": user, "notes": self.store.db.call("LRANGE", f"notes:{user}", 0, -1)}
        )

    def add_note(self, q):
        user = self.user()
        if user is None:
            return self.reply(401, {"error": "log in first"})
        try:
            text = json.loads(self.payload())["text"]
        except (ValueError, KeyError, TypeError):
            return self.reply(400, {"error": 'send {"text": ...}'})
        self.store.db.call("RPUSH", f"notes:{user}", str(text))
        self.reply(201, {"ok": True})

    def download(self, q):
        name = q.get("name", [""])[0]
        if name not in os.listdir(server.PUBLIC_DIR):
            return self.reply(404, {"error": "not found"})
        with open(os.path.join(server.PUBLIC_DIR, name), "rb") as fh:
            self.reply(200, fh.read(), "application/octet-stream")


class Admin(Base):
    def do_GET(self):
        self.dispatch(ADMIN)

    def stats(self, q):
        token = self.headers.get("X-Admin-Token", "").encode()
        if not hmac.compare_digest(token, self.store.admin_token.encode()):
            return self.reply(403, {"error": "forbidden"})
        db = self.store.db
        accounts = sorted(k[5:] for k in db.call("KEYS", "user:*"))
        notes = sum(db.call("LLEN", k) for k in db.call("KEYS", "notes:*"))
        self.reply(200, {"accounts": accounts, "notes": notes})


PUBLIC = {
    ("GET", "/"): Public.index,
    ("GET", "/health"): Public.health,
    ("POST", "/login"): Public.login,
    ("GET", "/api/notes"): Public.notes,
    ("POST", "/api/notes"): Public.add_note,
    ("GET", "/download"): Public.download,
}
ADMIN = {("GET", "/admin/stats"): Admin.stats}


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    where, sock_path = os.environ["REDIS_AT"], os.environ["APP_SOCKET"]
    store = Store(UnixRedis(where, "notes", server.read_file(os.environ["REDIS_AUTH_FILE"])))
    Base.store = store
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    public = UnixServer(sock_path, Public)
    admin = TcpServer(("127.0.0.1", int(os.environ["APP_PORT"])), Admin)
    threading.Thread(target=admin.serve_forever, daemon=True).start()
    public.serve_forever()


if __name__ == "__main__":
    main()
