"""harden-web's grader against services faked in memory (no cluster): the gaps a service
could slip through. A lockout below the contract's threshold, an admin endpoint taking any
token, a per-line header limit, suites outside the contract's and a service that stops
serving once the functional gate is over must each be caught; a correct service must not."""

from __future__ import annotations

import json
import secrets
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from infragym.attack import Peer, Response, run_attack
from infragym.grading import load_grader
from infragym.tasks import find_task

CONTRACT_SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
}


def grader() -> ModuleType:
    return sys.modules[load_grader(find_task("harden-web")).__module__]


class NoPeer(Peer):
    def __init__(self) -> None:
        self.sources = []

    def fresh(self) -> str:
        self.sources.append(f"198.18.0.{100 + len(self.sources) % 100}")
        return self.sources[-1]


@dataclass
class FakeSecrets:
    users: Mapping[str, str] = field(
        default_factory=lambda: {"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"}
    )
    public: bytes = b"public notice 1\n"
    files: Mapping[str, bytes] = field(default_factory=lambda: {"admin.token": b"t0ken\n"})


@dataclass
class FakeService:
    """The notes service in memory, as a Target: ``lock_at`` failed logins lock an
    account; ``dark_after`` requests, it refuses everything (``only_sessions``: whatever
    carries no session)."""

    lock_at: int = 10
    dark_after: int | None = None
    only_sessions: bool = False
    random_sessions: bool = False
    secrets: FakeSecrets = field(default_factory=FakeSecrets)
    failures: dict[str, int] = field(default_factory=dict)
    notes_of: dict[str, list[str]] = field(default_factory=dict)
    served: int = 0
    sessions: dict[str, str] = field(default_factory=dict)

    def https(self, peer: Peer, method: str, path: str, **kw: Any) -> Response:
        self.served += 1
        headers = kw.get("headers") or {}
        cookie = headers.get("Cookie", "")
        dark = self.dark_after is not None and self.served > self.dark_after
        if dark and not (self.only_sessions and cookie.startswith("sid=")):
            return Response(503)
        if path == "/":
            return Response(200, {}, b"<!-- notes-app -->")
        if path == "/health":
            return Response(200, {}, b"ok")
        if path in ("/download?name=welcome.txt", "/files/public/welcome.txt"):
            return Response(200, {}, self.secrets.public)
        sid = cookie.removeprefix("sid=")
        user = self.sessions.get(sid, "") if self.random_sessions else sid
        if path == "/api/notes" and user in self.secrets.users:
            if method == "POST":
                self.notes_of.setdefault(user, []).append(json.loads(kw["body"])["text"])
                return Response(201)
            return Response(200, {}, json.dumps({"notes": self.notes_of.get(user, [])}).encode())
        return Response(404)

    def login(self, peer: Peer, user: str, password: str, verify: bool = False) -> str | None:
        self.served += 1
        if self.dark_after is not None and self.served > self.dark_after:
            return None
        if self.failures.get(user, 0) >= self.lock_at:
            return None
        if self.secrets.users.get(user) != password:
            self.failures[user] = self.failures.get(user, 0) + 1
            return None
        if self.random_sessions:
            sid = secrets.token_hex(16)
            self.sessions[sid] = user
            return f"sid={sid}"
        return f"sid={user}"

    def notes(self, peer: Peer, cookie: str, verify: bool = False) -> Response:
        return self.https(peer, "GET", "/api/notes", headers={"Cookie": cookie})


def few_failures(service: FakeService) -> str | None:
    g = grader()
    service.failures["carol"] = 1  # what t_refusals spent
    try:
        g.t_few_failures(service, NoPeer())
    except g.Failed as exc:
        return str(exc)
    return None


def test_a_lockout_below_the_contracts_threshold_fails_the_gate() -> None:
    assert few_failures(FakeService(lock_at=10)) is None
    assert "locked out" in (few_failures(FakeService(lock_at=4)) or "")
    assert "locked out" in (few_failures(FakeService(lock_at=9)) or "")


class FakeHost:
    """The web host's ``run``: an admin endpoint that answers whoever sends a token
    (``any_token``) or only the right one."""

    def __init__(self, token: str, any_token: bool) -> None:
        self.token, self.any_token = token, any_token

    def run(self, argv: list[str], timeout: float) -> Any:
        script = argv[-1]
        sent = "X-Admin-Token" in script
        ok = sent if self.any_token else f"'X-Admin-Token', {self.token!r}" in script
        out = b'200\n{"accounts": ["alice", "bob", "carol"]}' if ok else b"403\n"
        return type("Done", (), {"stdout": out})()


def test_an_admin_endpoint_taking_any_token_is_caught_on_the_host() -> None:
    g = grader()
    for any_token, caught in ((True, True), (False, False)):
        t = FakeService()
        t.web = FakeHost("t0ken", any_token)  # type: ignore[attr-defined]
        t.app_port = 9000  # type: ignore[attr-defined]
        assert g.admin_locally(t).succeeded is caught
        assert g.t_admin(t) is None


@pytest.mark.parametrize(
    ("line_limit", "section_limit", "accepted"),
    [(16384, None, True), (16384, 16384, False), (8192, 16384, False)],
)
def test_a_header_limit_per_line_is_not_a_limit_on_the_section(
    line_limit: int, section_limit: int | None, accepted: bool
) -> None:
    g = grader()

    class Limited(FakeService):
        def https(self, peer: Peer, method: str, path: str, **kw: Any) -> Response:
            sizes = [len(k) + len(v) + 4 for k, v in (kw.get("headers") or {}).items()]
            if max(sizes, default=0) > line_limit:
                return Response(400)
            if section_limit is not None and sum(sizes) > section_limit:
                return Response(431)
            return Response(200)

    attack = next(a for a in g.attacks(fake_target(Limited())) if a.name == "oversized-header")
    assert run_attack(attack, NoPeer()).succeeded is accepted


def fake_target(service: FakeService) -> Any:
    service.web = service.store = type(
        "H", (), {"address": "198.18.0.2", "name": "h1", "data_dir": Path("/nonexistent")}
    )()  # type: ignore[attr-defined]
    service.hosts = [service.web]  # type: ignore[attr-defined]
    service.port, service.redis_port, service.app_port = 8443, 6379, 9000  # type: ignore[attr-defined]
    service.loot = []  # type: ignore[attr-defined]
    service.secrets = grader().Secrets(
        {"secret.key": b"k", "admin.token": b"t", "redis.password": b"r"},
        {"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"},
        "salt",
        b"public notice 1\n",
    )
    return service


def test_the_weak_cipher_probe_offers_every_suite_but_the_contracts() -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers(f"{grader().WEAK_CIPHERS}:@SECLEVEL=0")
    offered = {c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"}
    assert not offered & CONTRACT_SUITES
    # RSA key exchange, DHE, CBC with ECDHE, CCM, CAMELLIA: none forward-secret AEAD by ECDHE
    for suite in (
        "AES128-GCM-SHA256",
        "DHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-SHA",
        "AES128-CCM",
        "CAMELLIA128-SHA",
        "ECDHE-RSA-CAMELLIA128-SHA256",
    ):
        assert suite in offered, suite


def stays(service: FakeService, attacks: int = 8) -> str | None:
    """What a legitimate user sees through ``attacks`` attacks and after them."""
    g = grader()
    user = g.Regular(service, NoPeer())
    user.attempt("before the attacks", user.begin)
    for i in range(attacks):
        user.between(f"a{i}")
    user.finally_()
    return user.failure  # type: ignore[no-any-return]


def test_a_service_that_stops_serving_after_the_gate_is_caught() -> None:
    assert stays(FakeService()) is None
    # dark once the user's session and note are made (as after the functional gate)
    assert "after the attack a0" in (stays(FakeService(dark_after=2)) or "")
    # refusing whatever carries no session: the user's next use that needs none fails
    dark = stays(FakeService(dark_after=2, only_sessions=True)) or ""
    assert "after the attack a1" in dark and "GET /" in dark


def test_a_session_cookie_made_from_the_user_name_is_forged() -> None:
    g = grader()
    for random_sessions, forged in ((False, True), (True, False)):
        t = fake_target(FakeService(random_sessions=random_sessions))
        attack = next(a for a in g.attacks(t) if a.name == "forged-session")
        assert run_attack(attack, NoPeer()).succeeded is forged
        assert stays(t) is None  # legitimate use works either way


class StoreHost:
    """The store host's ``run``: what redis answers a ``PING`` without the password."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def run(self, argv: list[str], timeout: float) -> Any:
        return type("Done", (), {"stdout": self.reply})()


def test_redis_without_its_password_on_loopback_is_caught_on_the_host() -> None:
    g = grader()
    for reply, caught in ((b"b'+PONG\\r\\n'\n", True), (b"b'-NOAUTH Authentication'\n", False)):
        t = fake_target(FakeService())
        t.store = StoreHost(reply)
        assert g.redis_locally(t).succeeded is caught
