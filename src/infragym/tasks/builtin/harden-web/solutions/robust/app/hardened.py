"""The notes application, hardened: only the contract's accounts, logins limited per
account, downloads confined to the public directory, the admin endpoint behind its token,
no internals in answers. Runs server.py's handler with these changes."""

import collections
import hmac
import os
import threading
import time

import server

WINDOW_S = 300.0
MAX_FAILURES = 10


class HardenedApp(server.App):
    def __init__(self):
        self.failures = collections.defaultdict(collections.deque)
        self.lock = threading.Lock()
        super().__init__()

    def load_users(self):
        users = {}
        with open(os.environ["USERS_FILE"]) as fh:
            for line in fh:
                name, sep, password = line.strip().partition(":")
                if sep and name:
                    users[name] = password
        for key in self.db.call("KEYS", "user:*"):  # accounts of an earlier deployment
            if key.split(":", 1)[1] not in users:
                self.db.call("DEL", key)
        for name, password in users.items():
            self.db.call("HSET", f"user:{name}", "password", server.hash_password(password, name))

    def locked(self, name):
        with self.lock:
            q = self.failures[name]
            while q and q[0] < time.monotonic() - WINDOW_S:
                q.popleft()
            return len(q) >= MAX_FAILURES

    def failed(self, name):
        with self.lock:
            self.failures[name].append(time.monotonic())


class Handler(server.Handler):
    def version_string(self):
        return "notes"

    def login(self, query):
        form = server.urllib.parse.parse_qs(self.body().decode("utf-8", "replace"))
        name = (form.get("user") or [""])[0]
        password = (form.get("password") or [""])[0]
        if not name or not password:
            return self.send(400, {"error": "user and password are required"})
        if server.APP.locked(name):
            return self.send(429, {"error": "too many failed logins; try again later"})
        if not server.APP.check_password(name, password):
            server.APP.failed(name)
            return self.send(401, {"error": "bad credentials"})
        sid = server.APP.new_session(name)
        self.send(
            200, {"user": name}, headers=[("Set-Cookie", f"sid={sid}; Path=/; HttpOnly; Secure")]
        )

    def download(self, query):
        name = (query.get("name") or [""])[0]
        base = os.path.realpath(server.PUBLIC_DIR)
        path = os.path.realpath(os.path.join(base, name))
        if not name or os.path.dirname(path) != base or not os.path.isfile(path):
            return self.send(404, {"error": "not found"})
        with open(path, "rb") as fh:
            self.send(200, fh.read(), "application/octet-stream")

    def admin_stats(self, query):
        token = self.headers.get("X-Admin-Token", "")
        local = self.client_address[0] == "127.0.0.1" and "X-Forwarded-For" not in self.headers
        if not (local and hmac.compare_digest(token.encode(), server.APP.admin_token.encode())):
            return self.send(404, {"error": "not found"})
        return server.Handler.admin_stats(self, query)


ROUTES = {key: getattr(Handler, fn.__name__) for key, fn in server.ROUTES.items()}


def main():
    server.DEBUG = server.TRACEBACKS = False
    server.ROUTES.clear()
    server.ROUTES.update(ROUTES)
    server.APP = HardenedApp()
    httpd = server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler)
    httpd.daemon_threads = True
    httpd.serve_forever()


if __name__ == "__main__":
    main()
