"""The attack suite (infragym.attack, as harden-web's grader composes it) can fail and can
succeed: every probe is run against a deployment with one weakness left (it must succeed)
and against the robust reference (it must fail). One cluster holds them all: the robust
deployment and one deployment per weakness, each a one-host deployment of its own, built
from the robust reference by one small change; each probe runs only where it is aimed.
The judging of the probes themselves (a 200 without the secret is blocked, one with it is
not; a probe that cannot judge counts as not blocked) is tested without a cluster."""

from __future__ import annotations

import random
import shutil
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import assert_no_leftovers, needs_root

from infragym.attack import (
    Attack,
    AttackResult,
    AttackSuite,
    Outcome,
    Peer,
    Response,
    accepted_status,
    blocked_share,
    leak,
    record,
    run_attack,
)
from infragym.checkers import Verdict
from infragym.grading import load_grader, wait_listening
from infragym.history import History
from infragym.sandbox import Cluster
from infragym.tasks import find_task

TASK = find_task("harden-web")
PORT, APP_PORT, REDIS_PORT = 8443, 9000, 6379

# weakness -> (the robust reference's file, the text there, what replaces it), and the
# probes it must let through
WEAKNESSES: dict[str, tuple[list[tuple[str, str, str]], list[str]]] = {
    "app-public": (
        [("app/hardened.py", '(("127.0.0.1", int', '(("0.0.0.0", int')],
        ["port-scan"],
    ),
    "redis-open": (
        [
            ("deploy/run.sh", "BIND=127.0.0.1;", "BIND=0.0.0.0;"),
            ("deploy/run.sh", 'REDIS_AUTH_FILE="$SECRETS_DIR/redis.password"', "REDIS_AUTH_FILE="),
            (
                "deploy/redis-hardened.sh",
                'requirepass $(cat "$SECRETS_DIR/redis.password")',
                "enable-protected-configs yes",
            ),
            ("deploy/redis-hardened.sh", 'rename-command CONFIG ""', ""),
            ("deploy/redis-hardened.sh", "protected-mode yes", "protected-mode no"),
        ],
        ["redis-ping", "redis-config-set-dir", "redis-read-keys", "redis-local-no-auth"],
    ),
    "listing": (
        [
            (
                "deploy/nginx-tls.sh",
                "location /files/ { return 404; }",
                "location /files/ { alias $DATA_DIR/; autoindex on; deny $ATTACKER_ADDRESS; }",
            )
        ],
        ["secret-via-files", "leaked-credentials"],
    ),
    "traversal": (
        [
            (
                "app/hardened.py",
                "if not name or os.path.dirname(path) != base or not os.path.isfile(path):",
                "if not os.path.isfile(path):",
            )
        ],
        ["secret-via-traversal"],
    ),
    # the application's own port open to the network, and a flaw behind it
    "app-exposed": (
        [
            ("app/hardened.py", '(("127.0.0.1", int', '(("0.0.0.0", int'),
            (
                "app/hardened.py",
                "if not name or os.path.dirname(path) != base or not os.path.isfile(path):",
                "if not os.path.isfile(path):",
            ),
            (
                "app/hardened.py",
                "if not (local and hmac.compare_digest(",
                "if False and (local and (",
            ),
        ],
        ["secret-via-app-port", "admin-via-app-port"],
    ),
    "admin-open": (
        [
            (
                "app/hardened.py",
                "if not (local and hmac.compare_digest(",
                "if False and (local and (",
            ),
            ("deploy/nginx-tls.sh", "location ^~ /admin { return 404; }", ""),
        ],
        ["admin-remote", "admin-without-token"],
    ),
    "debug": (
        [
            ("app/hardened.py", "server.DEBUG = server.TRACEBACKS = False", "server.DEBUG = True"),
            ("deploy/nginx-tls.sh", "location ^~ /debug { return 404; }", ""),
            ("deploy/run.sh", "env -u SESSION_SALT ", "env "),
        ],
        ["debug-endpoint"],
    ),
    "tracebacks": (
        [
            (
                "app/hardened.py",
                "server.DEBUG = server.TRACEBACKS = False",
                "server.TRACEBACKS = True",
            ),
            ("app/hardened.py", 'name = (query.get("name") or [""])[0]', 'name = query["name"][0]'),
        ],
        ["error-page-leak"],
    ),
    "banner": (
        [("deploy/nginx-tls.sh", "server_tokens off;", "server_tokens on;")],
        ["version-banner"],
    ),
    "big-headers": (
        [
            (
                "deploy/nginx-tls.sh",
                "large_client_header_buffers 2 8k;",
                "large_client_header_buffers 4 64k;",
            )
        ],
        ["oversized-header"],
    ),
    "plain-http": ([("deploy/nginx-tls.sh", "listen $PORT ssl;", "listen $PORT;")], ["plain-http"]),
    "tls-old": (
        [
            (
                "deploy/nginx-tls.sh",
                "ssl_protocols TLSv1.2 TLSv1.3;",
                "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;",
            ),
            (
                "deploy/nginx-tls.sh",
                "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:",
                "ssl_ciphers ALL:@SECLEVEL=0:ECDHE-ECDSA-AES128-GCM-SHA256:",
            ),
        ],
        ["tls-legacy-version", "tls-weak-cipher"],
    ),
    "default-account": (
        [
            (
                "app/hardened.py",
                '        for key in self.db.call("KEYS", "user:*"):',
                '        users.setdefault("admin", "admin")\n'
                '        for key in self.db.call("KEYS", "user:*"):',
            ),
            # and the session cookie is the account's name (one cluster holds 16 hosts)
            (
                "app/hardened.py",
                "    def locked(self, name):",
                "    def session_user(self, cookie_header):\n"
                '        for part in (cookie_header or "").split(";"):\n'
                '            k, _, v = part.strip().partition("=")\n'
                '            if k == "sid" and self.db.call("HGET", f"user:{v}", "password"):\n'
                "                return v\n"
                "        return super().session_user(cookie_header)\n\n"
                "    def locked(self, name):",
            ),
        ],
        ["default-credentials", "forged-session"],
    ),
    "no-rate-limit": (
        [("app/hardened.py", "MAX_FAILURES = 10", "MAX_FAILURES = 10**9")],
        ["brute-force"],
    ),
    "key-modes": (
        [("deploy/run.sh", 'chmod 600 "$SECRETS_DIR"/*', 'chmod 644 "$SECRETS_DIR"/*')],
        ["secret-file-modes"],
    ),
}


def grader() -> ModuleType:
    return sys.modules[load_grader(TASK).__module__]


def probe_name(attack: Attack) -> str:
    return "port-scan" if attack.name.startswith("port-scan-") else attack.name


# -- the judging, without a cluster ----------------------------------------------------------


def fixed(r: Response) -> Attack:
    return leak("x", "critical", lambda peer: r, [b"s3cret"])


class NoPeer(Peer):
    def __init__(self) -> None:
        self.sources = []

    def fresh(self) -> str:
        self.sources.append("198.18.0.100")
        return self.sources[-1]


def test_a_200_is_blocked_unless_it_carries_what_the_attack_was_after() -> None:
    peer = NoPeer()
    assert not run_attack(fixed(Response(200, {}, b"ok")), peer).succeeded
    assert not run_attack(fixed(Response(200, {}, b"<html>welcome</html>")), peer).succeeded
    assert run_attack(fixed(Response(403, {}, b"denied: s3cret")), peer).succeeded
    assert run_attack(fixed(Response(200, {"x-debug": "s3cret"}, b"")), peer).succeeded
    big = accepted_status("big", "medium", lambda peer: Response(200))
    assert run_attack(big, peer).succeeded
    assert not run_attack(
        accepted_status("big", "medium", lambda peer: Response(431)), peer
    ).succeeded


def test_a_probe_that_cannot_judge_is_not_counted_blocked() -> None:
    def boom(peer: Peer) -> Outcome:
        raise ValueError("unparseable")

    r = run_attack(Attack("odd", "high", boom), NoPeer())
    assert r.succeeded and "could not judge" in r.evidence


def test_the_score_weighs_severity_and_rechecks_offline() -> None:
    rs = [
        AttackResult("a", "critical", False, "", "x", 0.0),
        AttackResult("b", "low", True, "", "x", 0.0),
        AttackResult("c", "medium", False, "", "x", 0.0),
    ]
    assert blocked_share(rs) == pytest.approx(6 / 7)
    h = History()
    record(h, rs)
    assert AttackSuite().check(h).score == pytest.approx(6 / 7)
    assert AttackSuite().check(h).verdict is Verdict.FAIL
    crit = AttackSuite("critical-attacks", ("critical",)).check(h)
    assert crit.verdict is Verdict.PASS and crit.judged == 1
    assert AttackSuite().check(History()).verdict is Verdict.UNKNOWN


def test_the_grader_caps_a_critical_success() -> None:
    g = grader()
    h = History()
    h.meta["functional"] = {"tests": {"t": None}, "problem": None}
    rs = [AttackResult(f"a{i}", "low", False, "", "x", 0.0) for i in range(15)]
    rs += [AttackResult(f"c{i}", "critical", False, "", "x", 0.0) for i in range(5)]
    record(h, [*rs, AttackResult("secret", "critical", True, "", "x", 0.0)])
    assert g.recheck(h).reward == pytest.approx(g.CRITICAL_CAP)
    # too few critical attacks judged is no pass either
    record(h, rs[:15])
    assert g.recheck(h).reward == pytest.approx(g.CRITICAL_CAP)
    record(h, [*rs, AttackResult("secret", "critical", False, "", "x", 0.0)])
    assert g.recheck(h).reward == pytest.approx(1.0)


# -- every probe against its weakness and against the robust reference -----------------------


def weakened(base: Path, dest: Path, changes: list[tuple[str, str, str]]) -> None:
    shutil.copytree(base, dest, symlinks=True)
    for rel, old, new in changes:
        p = dest / rel
        text = p.read_text()
        assert text.count(old) == 1, f"{rel} no longer holds {old!r}: update the test"
        p.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def deployments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, dict]]:
    g = grader()
    robust = TASK.solution("robust")
    ws = tmp_path_factory.mktemp("harden-ws")
    shutil.copytree(robust, ws / "robust", symlinks=True)
    for name, (changes, _) in WEAKNESSES.items():
        weakened(robust, ws / name, changes)
    (ws / "start.sh").write_text('exec /bin/sh "/srv/app/$FLAVOR/start.sh"\n')
    flavors = ["robust", *WEAKNESSES]
    names = [f"h{i + 1}" for i in range(len(flavors))]
    with Cluster(names, app=ws) as c:
        attacker = c.endpoint("attacker")
        sec = g.Secrets.make(names, [h.address for h in c.hosts])
        assert c.identity is not None
        targets = {}
        for h, flavor in zip(c.hosts, flavors, strict=True):
            sec.install(h, c.identity.uid, c.identity.gid)
            env = {
                "NODE_ID": h.name,
                "NODE_ADDRESS": h.address,
                "PEERS": f"{h.name}={h.address}",
                "PORT": str(PORT),
                "APP_PORT": str(APP_PORT),
                "REDIS_PORT": str(REDIS_PORT),
                "PROFILE": "staging",
                "DATA_DIR": "/srv/data",
                "SECRETS_DIR": "/srv/data/secrets",
                "SESSION_SALT": sec.salt,
                "FLAVOR": flavor,
                # the listing deployment refuses the attacker's own address (not its draws)
                "ATTACKER_ADDRESS": attacker.address,
            }
            proc = h.spawn("harden-web", ["/bin/sh", "/srv/app/start.sh"], env=env)
            targets[flavor] = (h, proc)
        for flavor, (h, proc) in targets.items():
            assert wait_listening(h, proc, PORT, 20.0) is None, flavor
        out = {}
        for flavor, (h, _) in targets.items():
            out[flavor] = g.Target(h, h, PORT, APP_PORT, REDIS_PORT, sec, ws / flavor, [h])
        peer = Peer(c, "attacker", random.Random(5), g.pool(c))
        for flavor, t in out.items():  # the application is up behind nginx
            if flavor != "plain-http":
                deadline = time.monotonic() + 15
                while peer.run(lambda t=t: g.ready(t, peer, 1.0)) and time.monotonic() < deadline:
                    pass
        yield c, out
        run_id = c.run_id
    assert_no_leftovers(run_id)


@needs_root
@pytest.mark.timeout(300)
def test_every_probe_succeeds_against_its_weakness_and_fails_against_robust(
    deployments: tuple[Cluster, dict],
) -> None:
    g = grader()
    cluster, targets = deployments
    peer = Peer(cluster, "attacker", random.Random(11), g.pool(cluster))
    suite = [probe_name(a) for a in g.attacks(targets["robust"])]
    aimed = {p for _, probes in WEAKNESSES.values() for p in probes}
    assert set(suite) == aimed, "every probe of the suite has a weakness that lets it through"
    assert len(suite) >= 15
    # the robust reference blocks the whole suite, each attack from a new address
    robust = peer.run(lambda: [run_attack(a, peer) for a in g.attacks(targets["robust"])])
    through = {r.name: r.evidence for r in robust if r.succeeded}
    assert not through, through
    assert len(set(peer.sources)) > len(suite) // 2
    failed = {}
    for name, (_, probes) in WEAKNESSES.items():
        attacks = [a for a in g.attacks(targets[name]) if probe_name(a) in probes]
        if "leaked-credentials" in probes:  # the leak it reuses must come first
            attacks.sort(key=lambda a: a.name != "secret-via-files")
        results = peer.run(lambda attacks=attacks, t=name: [run_attack(a, peer) for a in attacks])
        failed.update({f"{name}: {r.name}": r.evidence for r in results if not r.succeeded})
    assert not failed, failed


@needs_root
def test_the_tls_probes_use_a_real_client(deployments: tuple[Cluster, dict]) -> None:
    """The weak TLS deployment takes a TLS 1.0 handshake from Python's ssl; robust's does
    not even take TLS 1.2 without forward secrecy."""
    g = grader()
    cluster, targets = deployments
    peer = Peer(cluster, "attacker", random.Random(3), g.pool(cluster))

    def version(t: object, maximum: ssl.TLSVersion) -> str | None:
        from infragym.attack import tls_context

        ctx = tls_context(minimum=ssl.TLSVersion.TLSv1, maximum=maximum, ciphers="ALL:@SECLEVEL=0")
        try:
            peer.fresh()
            with peer.tls(t.web.address, PORT, ctx) as s:  # type: ignore[attr-defined]
                return s.version()
        except OSError:
            return None

    assert peer.run(lambda: version(targets["tls-old"], ssl.TLSVersion.TLSv1)) == "TLSv1"
    assert peer.run(lambda: version(targets["robust"], ssl.TLSVersion.TLSv1_1)) is None
    assert peer.run(lambda: version(targets["robust"], ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"


class FixedPeer(Peer):
    """An attacker that never changes address: its endpoint's own."""

    def fresh(self) -> str:
        self.sources.append(self.cluster.port(self.endpoint).address)
        return self.sources[-1]


@needs_root
def test_blocking_the_attackers_address_defeats_nothing(deployments: tuple[Cluster, dict]) -> None:
    """The listing deployment refuses the attacker's own address: from it the leak fails,
    from the addresses the suite draws it succeeds."""
    g = grader()
    cluster, targets = deployments
    t = targets["listing"]
    leak = next(a for a in g.attacks(t) if a.name == "secret-via-files")
    fixed = FixedPeer(cluster, "attacker", random.Random(1))
    assert not fixed.run(lambda: run_attack(leak, fixed)).succeeded
    drawn = Peer(cluster, "attacker", random.Random(2), g.pool(cluster))
    r = drawn.run(lambda: run_attack(leak, drawn))
    assert r.succeeded and r.source != cluster.port("attacker").address
