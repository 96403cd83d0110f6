"""Reusable attacks: each constructor returns an :class:`~._suite.Attack` whose success is
judged by what the attack was after, never by a status code alone."""

from __future__ import annotations

import ssl
import stat
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from ._client import Peer, Response, tls_context
from ._suite import Attack, Outcome, Severity

Request = Callable[[Peer], Response]
NETWORK_ERRORS = (OSError, ssl.SSLError)


def _found(body: bytes, markers: Iterable[bytes]) -> bytes | None:
    return next((m for m in markers if m and m in body), None)


def leak(
    name: str,
    severity: Severity,
    request: Request,
    markers: Sequence[bytes],
    what: str = "",
) -> Attack:
    """Succeeds when the answer to ``request`` carries one of ``markers`` (the secret's
    content, an environment canary, a stack trace): a 200 without it is blocked, so is a
    refused connection."""

    def run(peer: Peer) -> Outcome:
        try:
            r = request(peer)
        except NETWORK_ERRORS as exc:
            return Outcome(False, f"refused: {type(exc).__name__}: {exc}")
        hit = _found(r.body, markers) or _found(
            "\n".join(f"{k}: {v}" for k, v in r.headers.items()).encode(), markers
        )
        if hit is not None:
            return Outcome(True, f"HTTP {r.status} carried {hit[:40]!r}")
        return Outcome(False, f"HTTP {r.status}, {len(r.body)} bytes, none of the markers")

    return Attack(name, severity, run, what)


def port_scan(
    name: str,
    address: str,
    allowed: Collection[int],
    ports: Iterable[int] = range(1, 65536),
    severity: Severity = "medium",
) -> Attack:
    """Succeeds when ``address`` accepts TCP connections on a port outside ``allowed``
    (every port by default: a few seconds on a bridge, refusals come at once)."""

    def run(peer: Peer) -> Outcome:
        open_ports = peer.scan(address, ports)
        extra = [p for p in open_ports if p not in allowed]
        if extra:
            return Outcome(True, f"{address} listens on {', '.join(map(str, extra[:10]))}")
        return Outcome(False, f"{address}: only {sorted(open_ports)} open")

    return Attack(name, severity, run, f"TCP connect scan of {address}")


def redis_command(
    name: str, address: str, port: int, command: Sequence[str], success: Callable[[bytes], bool]
) -> Attack:
    """Succeeds when redis at ``address:port`` runs ``command`` without authentication
    (``success`` judges its reply: ``+PONG``, ``+OK``, a non-empty key list)."""

    def run(peer: Peer) -> Outcome:
        try:
            (reply,) = peer.redis(address, port, command)
        except NETWORK_ERRORS as exc:
            return Outcome(False, f"refused: {type(exc).__name__}")
        ok = success(reply)
        return Outcome(ok, f"{' '.join(command)} -> {reply[:80]!r}")

    return Attack(name, "critical", run, f"unauthenticated redis: {' '.join(command)}")


def tls_accepted(
    name: str,
    severity: Severity,
    address: str,
    port: int,
    *,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> Attack:
    """Succeeds when a real TLS client limited to ``maximum`` and ``ciphers`` completes a
    handshake (security level 0 on the client, so only the server can refuse)."""

    def run(peer: Peer) -> Outcome:
        ctx = tls_context(
            minimum=ssl.TLSVersion.TLSv1 if maximum is not None else None,
            maximum=maximum,
            ciphers=f"{ciphers or 'ALL'}:@SECLEVEL=0",
        )
        try:
            with peer.tls(address, port, ctx) as s:
                return Outcome(True, f"handshake done: {s.version()} {s.cipher()}")
        except NETWORK_ERRORS as exc:
            return Outcome(False, f"refused: {type(exc).__name__}: {str(exc)[:80]}")

    return Attack(name, severity, run)


def accepted_status(name: str, severity: Severity, request: Request) -> Attack:
    """Succeeds when ``request`` gets an answer below 400 (a request the service must
    refuse: an oversized header section, say); a closed connection is blocked."""

    def run(peer: Peer) -> Outcome:
        try:
            r = request(peer)
        except NETWORK_ERRORS as exc:
            return Outcome(False, f"refused: {type(exc).__name__}")
        return Outcome(0 < r.status < 400, f"HTTP {r.status}")

    return Attack(name, severity, run)


def brute_force(
    name: str, login: Callable[[Peer, str], bool], wrong: Sequence[str], right: str
) -> Attack:
    """Succeeds when ``right`` still logs in after every one of ``wrong`` was tried, each
    attempt from a new address (an attacker with many addresses): the service must limit
    attempts per account, not per address."""

    def run(peer: Peer) -> Outcome:
        taken = 0
        for pw in wrong:
            peer.fresh()
            try:
                taken += login(peer, pw)
            except NETWORK_ERRORS:
                pass
        if taken:
            return Outcome(True, f"{taken} wrong passwords were accepted")
        peer.fresh()
        try:
            ok = login(peer, right)
        except NETWORK_ERRORS as exc:
            return Outcome(False, f"the right password was refused ({type(exc).__name__})")
        return Outcome(ok, f"after {len(wrong)} wrong attempts the right password "
                       + ("logged in" if ok else "was refused"))  # fmt: skip

    return Attack(name, "high", run, f"{len(wrong)} wrong passwords then the right one")


def file_modes(name: str, files: Mapping[str, Path]) -> Attack:
    """Succeeds when a secret file on a host (``files``: what it is called in the
    contract, where the machine sees it) is readable by its group or others."""

    def run(peer: Peer) -> Outcome:
        del peer
        loose = []
        for label, path in files.items():
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                continue
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                loose.append(f"{label} {stat.filemode(mode)}")
        return Outcome(bool(loose), "; ".join(loose) or f"{len(files)} files private")

    return Attack(name, "medium", run)
