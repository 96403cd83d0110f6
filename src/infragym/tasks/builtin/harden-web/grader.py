"""Hidden grader of harden-web: a deployment that resists attack while it keeps serving.

Per episode the grader makes the secrets (a self-signed RSA certificate for the hosts'
names and addresses, the application's session key, the accounts, the admin token, the
redis password) and writes them owner-only into each host's ``$SECRETS_DIR`` before it
runs ``/bin/sh /srv/app/start.sh``. Legitimate use (:func:`functional_tests`) is tried
from the client namespace over TLS, verifying that certificate, each test from a newly
drawn address; the admin endpoint from the web host itself. Then the attacker endpoint, on
the same bridge and drawing its addresses from the same range, new for every attack, runs
:func:`attacks` (``infragym.attack``), while a legitimate user (:class:`Regular`) keeps
using the service between two attacks and after the last: a service that stops serving
once the gate is over fails the gate. Reward: the functional gate, then the share of
attacks that failed weighted by severity, capped at :data:`CRITICAL_CAP` when a critical
one succeeded. ``recheck(history)`` gives the same reward offline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import secrets
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infragym.attack import (
    Attack,
    AttackResult,
    AttackSuite,
    Outcome,
    Peer,
    Response,
    accepted_status,
    brute_force,
    file_modes,
    leak,
    port_scan,
    record,
    redis_command,
    run_attack,
    tls_accepted,
    tls_context,
)
from infragym.checkers import CheckResult, Verdict
from infragym.grading import (
    GradeContext,
    GradeOutcome,
    env_from_spec,
    finish,
    not_run,
    record_functional,
    wait_listening,
)
from infragym.grading import recheck as recheck_history
from infragym.history import History
from infragym.rubric import Criterion, RewardResult, Rubric, gate
from infragym.sandbox import Cluster, Host
from infragym.tasks import Variant, load_task

TASK = load_task(Path(__file__).parent)
START_CMD = ("/bin/sh", "/srv/app/start.sh")
LISTEN_S = 15.0
READY_S = 10.0  # then GET /health answers 200 within this
CRITICAL_CAP = 0.2
LOCKOUT = 10  # failed logins per account the contract allows before refusing
POOL = range(100, 200)  # the last byte of the addresses clients and attacker draw
SECRET_FILES = ("tls.key", "secret.key", "users.txt", "admin.token", "redis.password")
INDEX_MARK = b"<!-- notes-app -->"
ADMIN_MARK = b'"accounts"'
TRACE_MARKS = (b"Traceback (most recent call last)", b'File "/')
BANNER_MARKS = (b"nginx/1.", b"Python/3", b"BaseHTTP/")
# every TLS 1.2-and-below suite OpenSSL knows but the contract's (ECDHE with AES-GCM or
# ChaCha20-Poly1305): RSA key exchange, DHE, CBC, CCM, CAMELLIA, ARIA, anonymous, ...
WEAK_CIPHERS = "ALL:COMPLEMENTOFALL:!ECDHE+AESGCM:!ECDHE+CHACHA20"
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")


# -- the episode's secrets ---------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """What the grader hands the hosts (files of ``$SECRETS_DIR``) and what it looks for
    in the attacker's loot."""

    files: Mapping[str, bytes]
    users: Mapping[str, str]
    salt: str
    public: bytes

    @classmethod
    def make(cls, names: Sequence[str], addresses: Sequence[str]) -> Secrets:
        rng = random.SystemRandom()
        users = {n: secrets.token_urlsafe(12) for n in rng.sample(NAMES, 3)}
        crt, key = certificate(names, addresses)
        files = {
            "tls.crt": crt,
            "tls.key": key,
            "secret.key": secrets.token_hex(24).encode() + b"\n",
            "users.txt": "".join(f"{u}:{p}\n" for u, p in users.items()).encode(),
            "admin.token": secrets.token_hex(16).encode() + b"\n",
            "redis.password": secrets.token_hex(16).encode() + b"\n",
        }
        public = f"public notice {secrets.token_hex(8)}\n".encode()
        return cls(files, users, secrets.token_hex(12), public)

    def marks(self) -> list[bytes]:
        """Bytes whose presence in an answer shows a secret was read."""
        out = [self.files[n].strip() for n in ("secret.key", "admin.token", "redis.password")]
        out += [p.encode() for p in self.users.values()]
        return [*out, b"PRIVATE KEY", self.salt.encode()]

    def install(self, host: Host, uid: int, gid: int) -> None:
        """``$SECRETS_DIR`` (owner-only) and ``$DATA_DIR/public`` on ``host``."""
        sdir, pdir = host.data_dir / "secrets", host.data_dir / "public"
        for d, mode in ((sdir, 0o700), (pdir, 0o755)):
            d.mkdir(exist_ok=True)
            d.chmod(mode)
            os.chown(d, uid, gid)
            for name, data in self.files.items() if d == sdir else [("welcome.txt", self.public)]:
                p = d / name
                p.write_bytes(data)
                p.chmod(0o600 if d == sdir else 0o644)
                os.chown(p, uid, gid)


def certificate(names: Sequence[str], addresses: Sequence[str]) -> tuple[bytes, bytes]:
    """A self-signed RSA 2048 certificate for ``names`` and ``addresses`` and its key."""
    san = ",".join([*(f"DNS:{n}" for n in names), *(f"IP:{a}" for a in addresses)])
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                f"/CN={names[0]}",
                "-addext",
                f"subjectAltName={san}",
                "-keyout",
                f"{d}/key.pem",
                "-out",
                f"{d}/crt.pem",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return Path(f"{d}/crt.pem").read_bytes(), Path(f"{d}/key.pem").read_bytes()


# -- the deployment seen from outside ----------------------------------------------------


@dataclass
class Target:
    """One deployment: its web host (``web``) and redis host (``store``, the same with one
    host), the contract's ports and the episode's secrets; ``loot`` gathers what the
    attacks read, for the attack that reuses leaked credentials."""

    web: Host
    store: Host
    port: int
    app_port: int
    redis_port: int
    secrets: Secrets
    app_dir: Path
    hosts: Sequence[Host] = ()
    loot: list[bytes] = field(default_factory=list)

    def https(
        self, peer: Peer, method: str, path: str, *, verify: bool = False, **kw: object
    ) -> Response:
        ctx = tls_context(cafile=str(self.cafile)) if verify else tls_context()
        return peer.http(
            self.web.address,
            self.port,
            method,
            path,
            context=ctx,
            host_header=self.web.name,
            **kw,  # type: ignore[arg-type]
        )

    @property
    def cafile(self) -> Path:
        return self.web.data_dir / "secrets" / "tls.crt"

    def login(self, peer: Peer, user: str, password: str, verify: bool = False) -> str | None:
        """The session cookie a login gives (None: refused)."""
        form = f"user={user}&password={password}".encode()
        r = self.https(
            peer,
            "POST",
            "/login",
            verify=verify,
            body=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        m = re.search(r"(?:^|[;,\s])sid=([^;,\s]+)", r.headers.get("set-cookie", ""))
        return f"sid={m.group(1)}" if r.status == 200 and m else None

    def notes(self, peer: Peer, cookie: str, verify: bool = False) -> Response:
        return self.https(peer, "GET", "/api/notes", verify=verify, headers={"Cookie": cookie})


# -- functional tests (legitimate use) ---------------------------------------------------


class Failed(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


def t_index(t: Target, p: Peer) -> None:
    r = t.https(p, "GET", "/", verify=True)
    expect(r.status == 200 and INDEX_MARK in r.body, f"GET / answered {r.status}, not the index")
    r = t.https(p, "GET", "/health", verify=True)
    expect(r.status == 200 and r.body.strip() == b"ok", f"GET /health answered {r.status}")


def t_files(t: Target, p: Peer) -> None:
    css = (t.app_dir / "static" / "app.css").read_bytes()
    for path, want in (
        ("/static/app.css", css),
        ("/files/public/welcome.txt", t.secrets.public),
        ("/download?name=welcome.txt", t.secrets.public),
    ):
        p.fresh()
        r = t.https(p, "GET", path, verify=True)
        expect(r.status == 200 and r.body == want, f"GET {path} answered {r.status}, not the file")


def t_notes(t: Target, p: Peer) -> None:
    (u1, pw1), (u2, pw2), _ = t.secrets.users.items()
    tag = secrets.token_hex(6)
    c1 = t.login(p, u1, pw1, verify=True)
    expect(c1 is not None, f"{u1} could not log in with the right password")
    assert c1 is not None
    p.fresh()
    body = json.dumps({"text": f"note {tag}"}).encode()
    r = t.https(
        p,
        "POST",
        "/api/notes",
        verify=True,
        body=body,
        headers={"Cookie": c1, "Content-Type": "application/json"},
    )
    expect(r.status == 201, f"POST /api/notes answered {r.status}, not 201")
    p.fresh()
    r = t.notes(p, c1, verify=True)
    expect(r.status == 200 and tag.encode() in r.body, f"{u1}'s note is not in GET /api/notes")
    p.fresh()
    c2 = t.login(p, u2, pw2, verify=True)
    expect(c2 is not None, f"{u2} could not log in")
    assert c2 is not None
    r = t.notes(p, c2, verify=True)
    expect(r.status == 200 and tag.encode() not in r.body, f"{u2} sees {u1}'s note")


def t_refusals(t: Target, p: Peer) -> None:
    user = list(t.secrets.users)[2]
    r = t.https(
        p,
        "POST",
        "/login",
        verify=True,
        body=f"user={user}&password=nope".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    expect(r.status == 401, f"a wrong password answered {r.status}, not 401")
    r = t.https(p, "GET", "/api/notes", verify=True)
    expect(r.status == 401, f"GET /api/notes without a session answered {r.status}, not 401")
    r = t.https(p, "GET", f"/no-such-page-{secrets.token_hex(4)}", verify=True)
    expect(r.status == 404, f"an unknown path answered {r.status}, not 404")


def t_few_failures(t: Target, p: Peer) -> None:
    """The contract's threshold less one: t_refusals already spent one failure of this
    account, these bring it to LOCKOUT - 1, which must not lock it."""
    user, pw = list(t.secrets.users.items())[2]
    for _ in range(LOCKOUT - 2):
        p.fresh()
        t.login(p, user, "wrong-" + secrets.token_hex(3), verify=True)
    p.fresh()
    expect(
        t.login(p, user, pw, verify=True) is not None,
        f"{user} was locked out after {LOCKOUT - 1} failed logins",
    )


def functional_tests() -> list[tuple[str, Callable[[Target, Peer], None]]]:
    return [
        ("index-and-health", t_index),
        ("static-and-public-files", t_files),
        ("login-and-notes", t_notes),
        ("refusals", t_refusals),
        ("few-failures-no-lockout", t_few_failures),
    ]


def admin_on_host(t: Target, token: str | None) -> tuple[int, bytes]:
    """``GET /admin/stats`` from the web host itself (with ``token``): status and body."""
    script = (
        "import sys, urllib.request as u, urllib.error as e\n"
        f"r = u.Request('http://127.0.0.1:{t.app_port}/admin/stats')\n"
        + (f"r.add_header('X-Admin-Token', {token!r})\n" if token else "")
        + "try:\n    x = u.urlopen(r, timeout=4); print(x.status); sys.stdout.flush()\n"
        "    sys.stdout.buffer.write(x.read(65536))\n"
        "except e.HTTPError as h: print(h.code)\n"
        "except Exception as x: print(0, x)\n"
    )
    out = t.web.run(["/usr/bin/python3", "-I", "-c", script], timeout=10).stdout
    head, _, body = out.partition(b"\n")
    return int(head.split()[0] or 0) if head.strip() else 0, body


def t_admin(t: Target) -> str | None:
    token = t.secrets.files["admin.token"].decode().strip()
    status, body = admin_on_host(t, token)
    try:
        accounts = json.loads(body).get("accounts", [])
    except ValueError:
        accounts = []
    if status != 200 or not set(t.secrets.users) <= set(accounts):
        return f"the admin endpoint on the host answered {status}, without every account"
    return None


def ready(t: Target, peer: Peer, within_s: float) -> str | None:
    """None once ``GET /health`` answers 200 over verified TLS; else why not."""
    deadline = time.monotonic() + within_s
    why = "no answer"
    while time.monotonic() < deadline:
        try:
            r = t.https(peer, "GET", "/health", verify=True)
            if r.status == 200:
                return None
            why = f"HTTP {r.status}"
        except OSError as exc:
            why = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    return f"GET /health did not answer 200 within {within_s:g} s ({why})"


def functional(t: Target, peer: Peer) -> dict[str, str | None]:
    def run() -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        late = ready(t, peer, READY_S)
        if late:
            return {"ready": late}
        for name, test in functional_tests():
            peer.fresh()
            try:
                test(t, peer)
                out[name] = None
            except Failed as exc:
                out[name] = str(exc)
            except OSError as exc:  # ssl.SSLError too: a refused TLS handshake
                out[name] = f"{type(exc).__name__}: {exc}"
        return out

    results = peer.run(run)
    results["admin-from-the-host"] = t_admin(t)
    return results


# -- legitimate use while the attacks run ------------------------------------------------


@dataclass
class Regular:
    """A legitimate user who keeps using the service while it is attacked (the second
    account: the brute force locks the first one out). Between two attacks one of its
    uses (:meth:`uses`, in turn) must still work, so a service that goes dark, or refuses
    whatever carries no session, once the functional gate is over is caught; ``failure``
    keeps the first use that did not."""

    t: Target
    peer: Peer
    cookie: str = ""
    tag: str = ""
    turn: int = 0
    failure: str | None = None

    def begin(self) -> None:
        user, pw = list(self.t.secrets.users.items())[1]
        self.tag = secrets.token_hex(6)
        self.peer.fresh()
        cookie = self.t.login(self.peer, user, pw, verify=True)
        expect(cookie is not None, f"{user} could not log in")
        assert cookie is not None
        self.cookie = cookie
        self.peer.fresh()
        r = self.t.https(
            self.peer,
            "POST",
            "/api/notes",
            verify=True,
            body=json.dumps({"text": f"note {self.tag}"}).encode(),
            headers={"Cookie": cookie, "Content-Type": "application/json"},
        )
        expect(r.status == 201, f"POST /api/notes answered {r.status}, not 201")

    def read_notes(self) -> None:
        r = self.t.notes(self.peer, self.cookie, verify=True)
        expect(r.status == 200 and self.tag.encode() in r.body, "its notes are not served")

    def login_again(self) -> None:
        user, pw = list(self.t.secrets.users.items())[1]
        cookie = self.t.login(self.peer, user, pw, verify=True)
        expect(cookie is not None, f"{user} could not log in")
        assert cookie is not None
        self.cookie = cookie
        self.read_notes()

    def get(self, path: str, want: Callable[[Response], bool]) -> None:
        r = self.t.https(self.peer, "GET", path, verify=True)
        expect(r.status == 200 and want(r), f"GET {path} answered {r.status}")

    def uses(self) -> list[Callable[[], None]]:
        public = self.t.secrets.public
        return [
            self.read_notes,
            lambda: self.get("/", lambda r: INDEX_MARK in r.body),
            lambda: self.get("/download?name=welcome.txt", lambda r: r.body == public),
            self.login_again,
            lambda: self.get("/files/public/welcome.txt", lambda r: r.body == public),
            lambda: self.get("/health", lambda r: r.body.strip() == b"ok"),
        ]

    def attempt(self, when: str, use: Callable[[], None]) -> None:
        if self.failure is not None:
            return
        self.peer.fresh()
        try:
            use()
        except Failed as exc:
            self.failure = f"{when}: {exc}"
        except OSError as exc:
            self.failure = f"{when}: {type(exc).__name__}: {exc}"

    def between(self, attack: str) -> None:
        """One use, the next in turn, after ``attack``."""
        uses = self.uses()
        self.attempt(f"after the attack {attack}", uses[self.turn % len(uses)])
        self.turn += 1

    def finally_(self) -> None:
        """Every use once more, after the last attack."""
        for use in self.uses():
            self.attempt("after the attacks", use)


def attacked_while_used(
    t: Target, attacker: Peer, client: Peer
) -> tuple[list[AttackResult], str | None]:
    """The attack suite, one attack after another, a legitimate use between two (from the
    client's addresses) and all of them after the last, then the admin endpoint from the
    host: the results and the first legitimate use that failed (None: none did)."""
    user = Regular(t, client)
    client.run(lambda: user.attempt("before the attacks", user.begin))
    results = []
    for attack in attacks(t):
        results.append(attacker.run(lambda a=attack: run_attack(a, attacker)))
        client.run(lambda a=attack: user.between(a.name))
    client.run(user.finally_)
    return results, user.failure or t_admin(t)


# -- the attack suite ---------------------------------------------------------------------


def get(t: Target, *paths: str, **kw: object) -> Callable[[Peer], Response]:
    """GETs of ``paths`` over TLS; the answers' bodies joined (and kept as loot)."""

    def request(peer: Peer) -> Response:
        bodies: list[bytes] = []
        headers: dict[str, str] = {}
        status = 0
        for path in paths:
            try:
                r = t.https(peer, "GET", path, **kw)  # type: ignore[arg-type]
            except OSError:
                continue
            bodies.append(r.body)
            headers.update(r.headers)
            status = max(status, r.status)
        t.loot.extend(bodies)
        return Response(status, headers, b"\n".join(bodies))

    return request


def app_port_get(t: Target, *paths: str) -> Callable[[Peer], Response]:
    def request(peer: Peer) -> Response:
        bodies = []
        for path in paths:
            try:
                bodies.append(peer.http(t.web.address, t.app_port, "GET", path).body)
            except OSError:
                continue
        t.loot.extend(bodies)
        return Response(200 if bodies else 0, {}, b"\n".join(bodies))

    return request


def login_ok(t: Target) -> Callable[[Peer, str, str], bool]:
    def ok(peer: Peer, user: str, password: str) -> bool:
        cookie = t.login(peer, user, password)
        return cookie is not None and b'"notes"' in t.notes(peer, cookie).body

    return ok


def credentials(name: str, t: Target, tries: Callable[[], Sequence[tuple[str, str]]]) -> Attack:
    """Succeeds when one of ``tries()`` (user, password) logs in and reads notes."""

    def run(peer: Peer) -> Outcome:
        pairs = tries()
        for user, pw in pairs:
            peer.fresh()
            try:
                if login_ok(t)(peer, user, pw):
                    return Outcome(True, f"logged in as {user}")
            except OSError:
                continue
        return Outcome(False, f"{len(pairs)} credentials refused")

    return Attack(name, "high", run)


def forgeries(user: str) -> list[str]:
    """Session ids made from an account's name alone, as a hurried implementation makes
    them: the name, its base64 (padded or not) and hex, a base64 JSON object of it."""
    b64 = base64.b64encode(user.encode()).decode()
    doc = base64.urlsafe_b64encode(json.dumps({"user": user}).encode()).decode()
    return [user, b64, b64.rstrip("="), user.encode().hex(), doc]


def forged_session(t: Target) -> Attack:
    """Succeeds when a session cookie made from an account's name (:func:`forgeries`)
    reads that account's notes: sessions anyone can forge."""

    def run(peer: Peer) -> Outcome:
        tried = 0
        for user in t.secrets.users:
            for sid in forgeries(user):
                peer.fresh()
                tried += 1
                try:
                    r = t.notes(peer, f"sid={sid}")
                except OSError:
                    continue
                if r.status == 200 and b'"notes"' in r.body:
                    return Outcome(True, f"the cookie sid={sid} read {user}'s notes")
        return Outcome(False, f"{tried} forged session cookies refused")

    return Attack("forged-session", "high", run, "session cookies made from a user name")


def leaked_pairs(t: Target) -> list[tuple[str, str]]:
    pairs = re.findall(rb"(?m)^([a-z]{2,16}):(\S{6,64})$", b"\n".join(t.loot))
    return [(u.decode(), p.decode()) for u, p in dict.fromkeys(pairs)][:5]


def on_host(name: str, severity: str, fn: Callable[[], Outcome]) -> Attack:
    return Attack(name, severity, lambda peer: fn())  # type: ignore[arg-type]


def admin_locally(t: Target) -> Outcome:
    """Without a token, then with a wrong one, from the web host itself."""
    for token, what in (
        (None, "without the token"),
        ("wrong-" + secrets.token_hex(8), "with a wrong token"),
    ):
        status, body = admin_on_host(t, token)
        if ADMIN_MARK in body:
            return Outcome(True, f"{what} on the host: HTTP {status}")
    return Outcome(False, f"without the token and with a wrong one on the host: HTTP {status}")


def redis_locally(t: Target) -> Outcome:
    """``PING`` without the password to redis's port on loopback, from the store host
    itself: the contract wants the password for everything, not only from the network."""
    script = (
        "import socket\n"
        "try:\n"
        f"    s = socket.create_connection(('127.0.0.1', {t.redis_port}), 2)\n"
        "    s.settimeout(2); s.sendall(b'*1\\r\\n$4\\r\\nPING\\r\\n')\n"
        "    print(s.recv(64))\n"
        "except Exception as x: print('refused', type(x).__name__)\n"
    )
    out = t.store.run(["/usr/bin/python3", "-I", "-c", script], timeout=10).stdout.strip()
    return Outcome(b"+PONG" in out, f"PING on the store host, no password: {out[:60]!r}")


def oversized(t: Target) -> Callable[[Peer], Response]:
    """A header section of ~20 KiB: one long header, then (if that was refused) five of
    4000 bytes, each small enough for a per-line limit; the first answer below 400, else
    the last one."""

    def request(peer: Peer) -> Response:
        answer = Response(0)
        for headers in (
            {"X-Padding": "a" * 20000},
            {f"X-Padding-{i}": "a" * 4000 for i in range(5)},
        ):
            try:
                answer = t.https(peer, "GET", "/", headers=headers)
            except OSError:
                continue
            if 0 < answer.status < 400:
                break
        return answer

    return request


def attacks(t: Target) -> list[Attack]:
    """The suite, in order (the brute force locks the first account out: last but one)."""
    marks = t.secrets.marks()
    users = list(t.secrets.users.items())
    redis_at = t.store.address
    suite = [
        port_scan(f"port-scan-{h.name}", h.address, {t.port} if h is t.web else {t.redis_port})
        for h in t.hosts
    ]
    suite += [
        redis_command("redis-ping", redis_at, t.redis_port, ["PING"], lambda r: r == b"+PONG"),
        redis_command(
            "redis-config-set-dir",
            redis_at,
            t.redis_port,
            ["CONFIG", "SET", "dir", "/tmp"],
            lambda r: r == b"+OK",
        ),
        redis_command(
            "redis-read-keys",
            redis_at,
            t.redis_port,
            ["KEYS", "*"],
            lambda r: r.startswith(b"*") and not r.startswith(b"*0"),
        ),
        leak(
            "secret-via-files",
            "critical",
            get(
                t,
                "/files/",
                "/files/secrets/",
                "/files/secrets/secret.key",
                "/files/secrets/users.txt",
                "/files/public/../secrets/admin.token",
                "/files/public/..%2fsecrets/secret.key",
            ),
            marks,
        ),
        leak(
            "secret-via-traversal",
            "critical",
            get(
                t,
                "/download?name=../secrets/secret.key",
                "/download?name=..%2fsecrets%2fusers.txt",
                "/download?name=/srv/data/secrets/admin.token",
                "/download?name=%2e%2e/secrets/redis.password",
                "/static/../../../srv/data/secrets/secret.key",
            ),
            marks,
        ),
        leak(
            "secret-via-app-port",
            "critical",
            app_port_get(t, "/download?name=../secrets/secret.key"),
            marks,
        ),
        leak(
            "admin-remote",
            "critical",
            get(
                t,
                "/admin/stats",
                "//admin/stats",
                "/%61dmin/stats",
                "/admin/./stats",
                "/admin/stats?x=1",
                headers={"X-Admin-Token": "admin"},
            ),
            [ADMIN_MARK],
        ),
        leak("admin-via-app-port", "critical", app_port_get(t, "/admin/stats"), [ADMIN_MARK]),
        on_host("admin-without-token", "high", lambda: admin_locally(t)),
        on_host("redis-local-no-auth", "high", lambda: redis_locally(t)),
        leak(
            "debug-endpoint",
            "high",
            get(t, "/debug/env", "/debug", "/debug/", "/debug/vars"),
            marks,
        ),
        leak(
            "error-page-leak",
            "medium",
            get(
                t,
                "/download",
                "/download?name=no-such-" + secrets.token_hex(3),
                "/download?name=",
                "/login",
            ),
            TRACE_MARKS,
        ),
        leak("version-banner", "low", get(t, "/", "/no-such-page", "/%"), BANNER_MARKS),
        accepted_status("oversized-header", "medium", oversized(t)),
        leak(
            "plain-http",
            "high",
            lambda peer: peer.http(t.web.address, t.port, "GET", "/"),
            [INDEX_MARK],
        ),
        tls_accepted(
            "tls-legacy-version", "high", t.web.address, t.port, maximum=ssl.TLSVersion.TLSv1_1
        ),
        tls_accepted(
            "tls-weak-cipher",
            "medium",
            t.web.address,
            t.port,
            maximum=ssl.TLSVersion.TLSv1_2,
            ciphers=WEAK_CIPHERS,
        ),
        credentials(
            "default-credentials",
            t,
            lambda: [
                ("admin", "admin"),
                ("admin", "password"),
                ("root", "root"),
                ("test", "test"),
                ("guest", "guest"),
            ],
        ),
        credentials("leaked-credentials", t, lambda: leaked_pairs(t)),
        forged_session(t),
        brute_force(
            "brute-force",
            lambda peer, pw: login_ok(t)(peer, users[0][0], pw),
            [f"guess-{i}-{secrets.token_hex(3)}" for i in range(LOCKOUT + 2)],
            users[0][1],
        ),
        file_modes(
            "secret-file-modes",
            {f"{h.name}:{n}": h.data_dir / "secrets" / n for h in t.hosts for n in SECRET_FILES},
        ),
    ]
    return suite


# -- checks and reward ---------------------------------------------------------------------


def checkers() -> list[AttackSuite]:
    return [AttackSuite(), AttackSuite("critical-attacks", ("critical",))]


def rubric() -> Rubric:
    """- functional (gate, cap 0): every legitimate use works, over verified TLS.
    - attacks (weight 1): the share of attacks that failed, weighted by severity
      (critical 4, high 3, medium 2, low 1).
    - critical-attacks (gate, cap 0.2): no critical attack (a secret read, the data store
      used without its password, the admin endpoint used from the network) succeeded.
    """
    return Rubric(
        [
            gate("functional"),
            Criterion("attacks", weight=1.0, min_judged=15),
            gate("critical-attacks", cap=CRITICAL_CAP, min_judged=5),
        ]
    )


GATED = ("attacks", "critical-attacks")


# -- the grading ---------------------------------------------------------------------------


def pool(cluster: Cluster) -> list[str]:
    return [a for a in cluster.free_addresses() if int(a.rsplit(".", 1)[1]) in POOL]


def deploy(cluster: Cluster, t: Target, envs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Install the secrets, start the contract's command everywhere; why it did not
    listen in time (the web front on PORT; with two hosts, redis on its port)."""
    ident = cluster.identity
    assert ident is not None
    for h in cluster.hosts:
        t.secrets.install(h, ident.uid, ident.gid)
    procs = {
        h.name: h.spawn(
            "harden-web", list(START_CMD), env={**envs[h.name], "SESSION_SALT": t.secrets.salt}
        )
        for h in cluster.hosts
    }
    waits = [(t.web, t.port)] + ([(t.store, t.redis_port)] if t.store is not t.web else [])
    problems = [wait_listening(h, procs[h.name], port, LISTEN_S) for h, port in waits]
    return [p for p in problems if p]


def target_of(v: Variant, cluster: Cluster, sec: Secrets, app_dir: Path) -> Target:
    """The deployment of variant ``v`` on ``cluster``: the first host the web front, the
    last the store."""
    hosts = list(cluster.hosts)
    return Target(
        web=hosts[0],
        store=hosts[-1],
        port=int(v["port"]),
        app_port=int(v["app_port"]),
        redis_port=int(v["redis_port"]),
        secrets=sec,
        app_dir=app_dir,
        hosts=hosts,
    )


async def grade(ctx: GradeContext) -> GradeOutcome:
    ctx.progress(f"building {len(ctx.variant.host_names)} host(s)")
    cluster = ctx.cluster()
    envs = {h.name: env_from_spec(TASK.spec, ctx.variant)(cluster, h) for h in cluster.hosts}
    sec = Secrets.make([h.name for h in cluster.hosts], [h.address for h in cluster.hosts])
    app_dir = cluster.hosts[0].app_dir
    assert app_dir is not None
    t = target_of(ctx.variant, cluster, sec, Path(app_dir))
    problems = await asyncio.to_thread(deploy, cluster, t, envs)
    notes = list(problems)
    tests: dict[str, str | None] = {}
    draws = pool(cluster)
    if not problems:
        ctx.progress("legitimate use, from the client's drawn addresses")
        client = Peer(cluster, "client", random.Random(secrets.randbits(64)), draws)
        tests = await asyncio.to_thread(functional, t, client)
        notes += [f"functional test {n} failed: {e}" for n, e in tests.items() if e]
    result = record_functional(ctx.history, tests, "; ".join(problems) if problems else None)
    write_functional(ctx.artifacts_dir, result.score, tests)
    if result.verdict is not Verdict.PASS:
        return finish(
            rubric(),
            {"functional": result, **not_run("the functional contract failed", GATED)},
            result.score,
            notes,
        )
    ctx.progress("the attack suite, from the attacker's drawn addresses, while a user stays")
    cluster.endpoint("attacker")
    attacker = Peer(cluster, "attacker", random.Random(secrets.randbits(64)), draws)
    results, during = await asyncio.to_thread(attacked_while_used, t, attacker, client)
    tests["served-while-attacked"] = during
    if during:
        notes.append(f"functional test served-while-attacked failed: {during}")
    result = record_functional(ctx.history, tests, None)
    write_functional(ctx.artifacts_dir, result.score, tests)
    record(ctx.history, results)
    (ctx.artifacts_dir / "attacks.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=2, ensure_ascii=False)
    )
    checks: dict[str, CheckResult] = {c.name: c.check(ctx.history) for c in checkers()}
    checks["functional"] = result
    return finish(rubric(), checks, result.score, notes)


def write_functional(artifacts: Path, score: float, tests: Mapping[str, str | None]) -> None:
    (artifacts / "functional.json").write_text(
        json.dumps({"score": score, "tests": tests}, indent=2, ensure_ascii=False)
    )


def recheck(history: History, budget_s: float = 20.0) -> RewardResult:
    """The reward of a stored history, offline: the recorded functional tests and attacks."""
    del budget_s
    return recheck_history(history, checkers, rubric())
