"""Hidden grader of fleet-drift: a reconciler that keeps a fleet at its desired state.

The config host (role ``config``) runs the platform's desired-state server
(``desired_server.py``, never the agent's code); every fleet host (role ``fleet``) runs
``/bin/sh /srv/app/start.sh`` with the contract's environment. A sampler reads every fleet
host from outside, about five times a second: each managed file's content and mode, the
absent paths, the nginx processes (master pid, worker pids), the listening ports, and what
nginx serves (``/`` and ``/app``, release-tagged by the files and by the loaded config).

Gate: every fleet host converged to the first release within ``GATE_S`` of start. Then,
under steady probes of every host, a seeded colleague (:class:`infragym.nemesis.Colleague`)
drifts hosts and the desired state changes twice (a new release, then the rollback).
Checks: time to converge per event (p95 against the variant's target), the fraction of
events converged, churn (restarts, reloads and file rewrites on a converged host with no
event since), collateral edits (files outside the spec under ``/srv/etc``), availability
outside the windows a drift itself broke, and no mixed release served. The seed draws the
variant and the drift plan only; release tags are fresh randomness.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infragym.checkers import Checker, CheckResult, Verdict, check_all
from infragym.grading import (
    GradeContext,
    GradeOutcome,
    env_from_spec,
    finish,
    measured,
    not_run,
    record_functional,
)
from infragym.grading import recheck as recheck_history
from infragym.history import History
from infragym.nemesis import (
    DRIFT_FAULT,
    Colleague,
    DriftTargets,
    drift_schedule,
    listening_ports,
    parent_pid,
    service_pids,
)
from infragym.rubric import Criterion, RewardResult, Rubric, gate, linear
from infragym.sandbox import Cluster, Host
from infragym.tasks import Variant, load_task
from infragym.workload import (
    HttpCall,
    Op,
    RequestClient,
    Result,
    Runner,
    Stream,
    Target,
    parse_targets,
    status_result,
)

TASK = load_task(Path(__file__).parent)
START_CMD = ("/bin/sh", "/srv/app/start.sh")
SERVER = Path(__file__).parent / "desired_server.py"
ETC = "/srv/etc"
NGINX_CONF = f"{ETC}/nginx/nginx.conf"
APP_CONF = f"{ETC}/app/app.conf"
LIMITS_CONF = f"{ETC}/app/limits.conf"
GATE_S = 20.0  # every host converged this long after start (the instructions say so)
SAMPLE_S = 0.2
PROBE_RATE = 5.0  # per fleet host
OP_TIMEOUT_S = 1.0
DRIFTS, DRIFT_GAP_S, FIRST_DRIFT_S = 12, 2.5, 2.0
RELEASE_PAUSE_S = 4.0  # the release lands this long after the first half of the drifts
TAIL_S = 6.0
BREAK_GRACE_S = 0.5  # requests to a host a drift broke are not counted until this after
SSI_RELEASE = '<!--# echo var="release" -->'  # the loaded configuration's tag
RELOAD_CMD = ("/usr/sbin/nginx", "-c", NGINX_CONF, "-s", "reload")
BYSTANDERS = {
    f"{ETC}/app/local.conf": (b"# local overrides kept by operations: not managed\n", 0o644),
    f"{ETC}/notes/README": (b"Hand-kept notes about this host.\n", 0o600),
    f"{ETC}/nginx/extra-mime.types": (b"types { text/x-notes notes; }\n", 0o644),
}
CONVERGED_MIN = 0.8
NAIVE_CAP = 0.3
CHURN_CAP = 0.2
PARTIAL_CAP = COLLATERAL_CAP = 0.5


# -- the desired state ----------------------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    """One revision of the desired state: files (view path -> content, mode), paths that
    must not exist, the release it carries and the ports nothing may listen on."""

    revision: int
    release: str
    files: Mapping[str, tuple[bytes, int]]
    absent: tuple[str, ...]
    forbidden: tuple[int, ...]

    def to_json(self) -> bytes:
        doc = {
            "format": 1,
            "revision": self.revision,
            "release": self.release,
            "files": [
                {"path": p, "mode": f"{m:04o}", "content": c.decode()}
                for p, (c, m) in self.files.items()
            ],
            "absent": list(self.absent),
            "services": [
                {
                    "name": "nginx",
                    "config": NGINX_CONF,
                    "reload_when_changed": [NGINX_CONF, APP_CONF],
                }
            ],
            "must_not_listen": list(self.forbidden),
        }
        return json.dumps(doc, indent=1).encode()


def site_dir(release: str) -> str:
    return f"{ETC}/releases/{release}/site"


def nginx_conf(release: str, port: int) -> bytes:
    return f"""worker_processes 1;
pid /srv/data/nginx/nginx.pid;
error_log /srv/logs/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path /srv/data/nginx/body;
    proxy_temp_path /srv/data/nginx/proxy;
    fastcgi_temp_path /srv/data/nginx/fastcgi;
    uwsgi_temp_path /srv/data/nginx/uwsgi;
    scgi_temp_path /srv/data/nginx/scgi;
    default_type text/html;
    server {{
        listen {port};
        set $release "{release}";
        root {site_dir(release)};
        ssi on;
        include {APP_CONF};
    }}
}}
""".encode()


def release_files(release: str, port: int, limit: int) -> dict[str, tuple[bytes, int]]:
    site = site_dir(release)
    return {
        f"{site}/index.html": (
            f"<html><body>file={release} config={SSI_RELEASE}</body></html>\n".encode(),
            0o644,
        ),
        f"{site}/about.html": (f"<p>about release {release}</p>\n".encode(), 0o644),
        f"{site}/style.css": (f"/* {release} */ body {{ margin: 0; }}\n".encode(), 0o644),
        APP_CONF: (
            f'location = /app {{ default_type text/plain; return 200 "app={release} '
            f'config=$release\\n"; }}\n'.encode(),
            0o640,
        ),
        LIMITS_CONF: (f"max_clients = {limit}\nrelease = {release}\n".encode(), 0o600),
        NGINX_CONF: (nginx_conf(release, port), 0o644),
    }


def releases(port: int) -> tuple[Desired, Desired, Desired, bytes]:
    """The first release, the next one, the rollback to the first, and a stale nginx
    configuration of a release never published (what a colleague loads by hand)."""
    tag = secrets.token_hex(3)
    r1, r2, r0 = f"r1-{tag}", f"r2-{tag}", f"r0-{tag}"
    forbidden = (port + 1, 6379)
    f1, f2 = release_files(r1, port, 100), release_files(r2, port, 150)
    return (
        Desired(1, r1, f1, (), forbidden),
        Desired(2, r2, f2, tuple(p for p in f1 if p not in f2), forbidden),
        Desired(3, r1, f1, tuple(p for p in f2 if p not in f1), forbidden),
        nginx_conf(r0, port),
    )


# -- reading a host from outside -------------------------------------------------------------


def real_path(host: Host, path: str) -> Path | None:
    """``path`` of the host's view under ``/srv/etc`` on the machine, or None when it is
    not there or resolves out of the host's ``/srv/etc`` (a symlink is not followed out)."""
    rel = os.path.relpath(path, ETC)
    if rel.startswith(".."):
        return None
    root = os.path.realpath(host.etc_dir)
    p = os.path.realpath(os.path.join(root, rel))
    return Path(p) if p.startswith(root + os.sep) else None


def read_regular(p: Path | None, limit: int = 1 << 20) -> tuple[bytes, int, int, int] | None:
    """(content, mode, inode, mtime_ns) of a regular file, else None."""
    if p is None:
        return None
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return os.read(fd, limit), stat.S_IMODE(st.st_mode), st.st_ino, st.st_mtime_ns
    finally:
        os.close(fd)


def http_get(host: Host, port: int, path: str, timeout: float = 0.5) -> tuple[int, bytes]:
    """A GET to the host's own address from inside its network namespace."""
    with host.socket() as s:
        s.settimeout(timeout)
        s.connect((host.address, port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: fleet\r\n\r\n".encode())
        data = b""
        while len(data) < 65536:
            chunk = s.recv(8192)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


def fingerprint(reads: Mapping[str, tuple[bytes, int, int, int] | None]) -> str:
    h = hashlib.sha256()
    for path in sorted(reads):
        r = reads[path]
        h.update(f"{path}:{r[2] if r else '-'}:{r[3] if r else '-'};".encode())
    return h.hexdigest()[:16]


def sample(host: Host, want: Desired, port: int) -> dict[str, Any]:
    """One reading of ``host`` against ``want``: converged or the first reason not."""
    reads = {p: read_regular(real_path(host, p)) for p in want.files}
    reason = ""
    for path, (content, mode) in want.files.items():
        r = reads[path]
        if r is None:
            reason = f"{path} missing"
        elif r[0] != content:
            reason = f"{path} differs"
        elif r[1] != mode:
            reason = f"{path} has mode {r[1]:04o}, not {mode:04o}"
        if reason:
            break
    if not reason:
        for path in want.absent:
            p = real_path(host, path)
            if p is not None and os.path.lexists(p):
                reason = f"{path} exists"
                break
    # a worker nginx has just forked carries the master's title for an instant: a
    # master is one whose parent is no nginx master (a reload is not a restart)
    titled = service_pids(host, "nginx: master")
    masters = [p for p in titled if parent_pid(p) not in titled]
    workers = sorted(p for p in service_pids(host, "nginx: worker"))
    if not reason and not masters:
        reason = "nginx is not running"
    if not reason:
        bad = sorted(listening_ports(host) & set(want.forbidden))
        if bad:
            reason = f"something listens on {bad[0]}"
    if not reason:
        reason = served(host, port, want.release)
    return {
        "ok": not reason,
        "why": reason,
        "rev": want.revision,
        "master": masters[0] if masters else 0,
        "workers": workers,
        "files": fingerprint(reads),
    }


def served(host: Host, port: int, release: str) -> str:
    for path, expect in (
        ("/", f"file={release} config={release}"),
        ("/app", f"app={release} config={release}"),
    ):
        try:
            status, body = http_get(host, port, path)
        except OSError as exc:
            return f"GET {path}: {exc}"
        if status != 200 or expect.encode() not in body:
            return f"GET {path} served {status} {body[:60]!r}, not {expect}"
    return ""


@dataclass
class Sampler:
    """Reads every fleet host against the current desired state until stopped."""

    hosts: Sequence[Host]
    port: int
    clock: Any
    current: Desired
    samples: list[list[Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            begun = time.monotonic()
            for h in self.hosts:
                want = self.current
                t = self.clock.now()
                try:
                    s = sample(h, want, self.port)
                except Exception as exc:  # a host torn down under us: not converged
                    s = {
                        "ok": False,
                        "why": f"unreadable: {exc}",
                        "rev": want.revision,
                        "master": 0,
                        "workers": [],
                        "files": "",
                    }
                self.samples.append(
                    [
                        round(t, 3),
                        h.name,
                        s["ok"],
                        s["why"][:120],
                        s["rev"],
                        s["master"],
                        s["workers"],
                        s["files"],
                    ]
                )
            self.stop.wait(max(0.0, SAMPLE_S - (time.monotonic() - begun)))

    def converged(self, name: str, since: float = 0.0) -> bool:
        last = [s for s in self.samples[-4 * len(self.hosts) :] if s[1] == name and s[0] >= since]
        return bool(last) and bool(last[-1][2])

    def last_reason(self, name: str) -> str:
        for s in reversed(self.samples):
            if s[1] == name:
                return str(s[3]) or "converged"
        return "never sampled"


# -- the probes --------------------------------------------------------------------------


class BodyClient(RequestClient):
    """A GET whose completion keeps the body's start (the release tags)."""

    __slots__ = ()

    def encode(self, op: Op) -> HttpCall:
        return HttpCall("GET", op.key or "/")

    def decode(self, op: Op, status: int, body: bytes) -> Result:
        return status_result(status, body[:120].decode("utf-8", "replace"))


@dataclass(frozen=True)
class FleetProbe:
    targets: tuple[Target, ...]
    name: str = "fleet"

    def ops(self) -> Iterator[Op]:
        while True:
            for path in ("/", "/app"):
                for t in self.targets:
                    yield Op("read", t, key=path)

    def default_client(self) -> BodyClient:
        return BodyClient()


# -- checks ---------------------------------------------------------------------------------


def events(history: History) -> list[tuple[float, str, str]]:
    """(time, host, label) of every event that moved a host's desired or actual state:
    each drift that showed, and each release for every fleet host."""
    out = [
        (e.time, e.targets[0], e.label)
        for e in history.faults
        if e.fault == DRIFT_FAULT and e.targets and "skipped" not in e.detail
    ]
    for r in history.meta.get("releases", []):
        out += [(float(r["t"]), h, f"release-{r['revision']}") for h in history.meta["fleet"]]
    return sorted(out)


def spans(history: History) -> list[tuple[float, float, str]]:
    """(begin, end, host) of everything done to a host from outside, skipped drifts
    included (a drift undone before it showed still happened)."""
    out = [
        (e.time, float(e.detail.get("done", e.time)), e.targets[0])
        for e in history.faults
        if e.fault == DRIFT_FAULT and e.targets
    ]
    for r in history.meta.get("releases", []):
        t = float(r["t"])
        out += [(t, float(r.get("done", t)), h) for h in history.meta["fleet"]]
    return out


def per_host(samples: Sequence[Sequence[Any]]) -> dict[str, list[Sequence[Any]]]:
    out: dict[str, list[Sequence[Any]]] = {}
    for s in samples:
        out.setdefault(str(s[1]), []).append(s)
    return out


def convergence(history: History) -> list[tuple[str, float | None, str]]:
    """(label@host, seconds to converge or None, why not) per event, in order: the time
    from the event to the host's next converged sample, whatever else happened to the
    host meanwhile (a drift that lands before the host caught up with a release leaves
    it off the spec for that release until it converges at last); None if it never did
    before the end."""
    by_host = per_host(history.meta.get("samples", []))
    evs = events(history)
    end = float(history.meta.get("phase_end", 0.0))
    out = []
    for t, host, label in evs:
        after = [s for s in by_host.get(host, []) if t < s[0] <= end]
        hit = next((s for s in after if s[2]), None)
        why = str(after[-1][3]) if after and not hit else ""
        out.append((f"{label}@{host}", None if hit is None else float(hit[0]) - t, why))
    return out


@dataclass(frozen=True)
class ConvergeTime:
    target_s: float
    name: str = "converge-time"

    def check(self, history: History) -> CheckResult:
        rows = convergence(history)
        if not rows:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no events", judged=0)
        times = sorted(math.inf if d is None else d for _, d, _ in rows)
        p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
        worst = max(rows, key=lambda r: math.inf if r[1] is None else r[1])
        metrics = {
            "p95_s": p95 if math.isfinite(p95) else -1.0,
            "events": len(rows),
            "median_s": times[len(times) // 2] if math.isfinite(times[len(times) // 2]) else -1.0,
        }
        score = (
            0.0
            if not math.isfinite(p95)
            else min(1.0, max(0.0, (3 * self.target_s - p95) / (2 * self.target_s)))
        )
        return CheckResult(
            self.name,
            Verdict.PASS if p95 <= self.target_s else Verdict.FAIL,
            score,
            f"p95 time to converge {p95:.2f} s over {len(rows)} events (target "
            f"{self.target_s:g} s); slowest {worst[0]}"
            + (f" ({worst[1]:.2f} s)" if worst[1] is not None else f" never ({worst[2]})"),
            metrics,
            judged=len(rows),
        )


@dataclass(frozen=True)
class Converged:
    name: str = "converged"

    def check(self, history: History) -> CheckResult:
        rows = convergence(history)
        if not rows:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no events", judged=0)
        missed = [r for r in rows if r[1] is None]
        share = 1 - len(missed) / len(rows)
        return CheckResult(
            self.name,
            Verdict.PASS if share >= CONVERGED_MIN else Verdict.FAIL,
            share,
            f"{len(rows) - len(missed)} of {len(rows)} drifts and releases converged"
            + (f"; not {missed[0][0]} ({missed[0][2]})" if missed else ""),
            {"events": len(rows), "missed": len(missed)},
            judged=len(rows),
        )


@dataclass(frozen=True)
class Churn:
    """Restarts (a new nginx master), reloads (a new worker) and file rewrites (a managed
    file's inode or mtime changed) seen on a host that was converged at the previous
    sample, with nothing done to it from outside since (a drift or release whose span
    reaches into the interval): work done when nothing had changed."""

    name: str = "churn"

    def check(self, history: History) -> CheckResult:
        done = spans(history)
        fleet = history.meta.get("fleet", [])
        counts = {"restarts": 0, "reloads": 0, "rewrites": 0}
        first = ""
        judged = 0
        for host, rows in per_host(history.meta.get("samples", [])).items():
            for prev, cur in itertools.pairwise(rows):
                if not prev[2] or any(
                    h == host and a <= cur[0] and b > prev[0] for a, b, h in done
                ):
                    continue
                judged += 1
                what = []
                if cur[5] and prev[5] and cur[5] != prev[5]:
                    what.append("restarts")
                elif set(cur[6]) - set(prev[6]) and prev[6]:
                    what.append("reloads")
                if cur[7] != prev[7] and cur[4] == prev[4]:
                    what.append("rewrites")
                for w in what:
                    counts[w] += 1
                    first = first or f"{w[:-1]} on {host} at {cur[0]:.1f} s"
        total = sum(counts.values())
        allowed = max(1, len(fleet) // 2)
        score = max(0.0, 1 - total / (4 * max(1, len(fleet))))
        return CheckResult(
            self.name,
            Verdict.PASS if total <= allowed else Verdict.FAIL,
            score,
            f"{total} restarts, reloads or rewrites with nothing changed "
            f"({counts['restarts']} restarts, {counts['reloads']} reloads, "
            f"{counts['rewrites']} rewrites) over {judged} quiet intervals"
            + (f"; first: {first}" if first else ""),
            {**counts, "quiet": judged},
            judged=judged,
        )


def broken_windows(history: History) -> dict[str, list[tuple[float, float]]]:
    """Per host, the spans a drift itself broke serving (a killed service, a stale
    configuration loaded by hand): from the drift until it converged, plus a grace."""
    by_host = per_host(history.meta.get("samples", []))
    out: dict[str, list[tuple[float, float]]] = {}
    end = float(history.meta.get("phase_end", 0.0))
    for e in history.faults:
        if e.fault != DRIFT_FAULT or e.detail.get("kind") not in ("kill-service", "stale-config"):
            continue
        host = e.targets[0]
        hit = next((s for s in by_host.get(host, []) if s[0] > e.time and s[2]), None)
        stop = float(hit[0]) + BREAK_GRACE_S if hit else end + 60
        out.setdefault(host, []).append((e.time - 0.2, stop))
    return out


def judged_ops(history: History) -> Iterator[tuple[str, Any]]:
    broken = broken_windows(history)
    for op in history.operations():
        if op.f != "read" or op.node is None:
            continue
        if any(a <= op.invoke <= b for a, b in broken.get(op.node, [])):
            continue
        yield op.node, op


@dataclass(frozen=True)
class Served:
    name: str = "availability"

    def check(self, history: History) -> CheckResult:
        ops = [op for _, op in judged_ops(history)]
        if not ops:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no requests judged", judged=0)
        ok = sum(1 for op in ops if op.ok)
        share = ok / len(ops)
        return CheckResult(
            self.name,
            Verdict.PASS if share >= 0.999 else Verdict.FAIL,
            share,
            f"{ok} of {len(ops)} requests answered 200 outside the spans drifts broke",
            {"availability": share, "requests": len(ops)},
            judged=len(ops),
        )


@dataclass(frozen=True)
class NoMixedRelease:
    """Every answer carries one release: the served file's and the loaded configuration's
    tags agree (``file=X config=X``, ``app=X config=X``)."""

    name: str = "no-partial-state"

    def check(self, history: History) -> CheckResult:
        judged = mixed = 0
        first = ""
        for node, op in judged_ops(history):
            if not op.ok or not isinstance(op.result, str):
                continue
            words = dict(w.split("=", 1) for w in op.result.replace("<", " ").split() if "=" in w)
            tags = {v for k, v in words.items() if k in ("file", "app", "config")}
            judged += 1
            if len(tags) > 1:
                mixed += 1
                first = first or f"{node} at {op.invoke:.1f} s: {op.result[:60]!r}"
        return CheckResult(
            self.name,
            Verdict.PASS if not mixed else Verdict.FAIL,
            1.0 if not mixed else 0.0,
            f"{mixed} of {judged} answers mixed two releases"
            + (f"; first {first}" if first else ""),
            {"mixed": mixed},
            judged=judged,
        )


@dataclass(frozen=True)
class Collateral:
    """Files outside the spec, read at the end: the bystanders planted before start are
    as they were, and nothing else is under ``/srv/etc``."""

    name: str = "collateral"

    def check(self, history: History) -> CheckResult:
        found = history.meta.get("collateral")
        if found is None:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "not read", judged=0)
        n = len(found)
        return CheckResult(
            self.name,
            Verdict.PASS if not n else Verdict.FAIL,
            1.0 if not n else 0.0,
            "no file outside the spec changed"
            if not n
            else f"{n} collateral edits: {'; '.join(found[:3])}",
            {"edits": n},
            judged=max(1, len(history.meta.get("fleet", []))),
        )


def checkers(target_s: float) -> list[Checker]:
    return [ConvergeTime(target_s), Converged(), Churn(), Collateral(), Served(), NoMixedRelease()]


def rubric() -> Rubric:
    """Gates first, then weights.

    - functional (gate, cap 0): every fleet host converged to the first release in time.
    - converged (gate, cap 0.3; weight 3): >= 80 % of drifts and releases converged.
    - churn (gate, cap 0.2; weight 2): at most one restart, reload or rewrite per two
      hosts with nothing changed.
    - no-partial-state (gate, cap 0.5; weight 1); collateral (gate, cap 0.5; weight 1).
    - converge-time (weight 3): p95 at the target full, 0 at three times it.
    - availability (weight 2): 0 at 97 %, full at 99.9 % of requests outside broken spans.
    """
    return Rubric(
        [
            gate("functional"),
            Criterion("converged", weight=3.0, gate=True, cap=NAIVE_CAP, min_judged=10),
            Criterion("churn", weight=2.0, gate=True, cap=CHURN_CAP, min_judged=20),
            Criterion("no-partial-state", weight=1.0, gate=True, cap=PARTIAL_CAP, min_judged=100),
            Criterion("collateral", weight=1.0, gate=True, cap=COLLATERAL_CAP),
            Criterion("converge-time", weight=3.0, min_judged=10),
            Criterion(
                "availability",
                weight=2.0,
                score_fn=linear(0.97, 0.999, "availability"),
                min_judged=200,
            ),
        ]
    )


GATED = ("converged", "churn", "no-partial-state", "collateral", "converge-time", "availability")


# -- the grading ----------------------------------------------------------------------------


def publish(cfg: Host, desired: Desired) -> None:
    tmp = cfg.data_dir / ".desired.json.tmp"
    tmp.write_bytes(desired.to_json())
    os.chmod(tmp, 0o644)
    os.replace(tmp, cfg.data_dir / "desired.json")


def plant(host: Host) -> None:
    for path, (content, mode) in BYSTANDERS.items():
        p = host.etc_dir / os.path.relpath(path, ETC)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        os.chmod(p, mode)
        for q in (p, p.parent):
            os.chown(q, host.identity.uid, host.identity.gid)


def collateral(host: Host, want: Desired) -> list[str]:
    found = []
    for path, (content, mode) in BYSTANDERS.items():
        r = read_regular(real_path(host, path))
        if r is None or r[0] != content or r[1] != mode:
            found.append(f"{host.name}:{path} {'gone' if r is None else 'changed'}")
    keep = set(want.files) | set(BYSTANDERS)
    root = host.etc_dir
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            view = f"{ETC}/{os.path.relpath(os.path.join(dirpath, f), root)}"
            if view not in keep:
                found.append(f"{host.name}:{view} is not in the spec")
    return found


async def grade(ctx: GradeContext) -> GradeOutcome:
    v: Variant = ctx.variant
    port, target = int(v["port"]), float(v["converge_s"])
    fleet_names = v.hosts_of("fleet")
    ctx.progress(f"building a config host and {len(fleet_names)} fleet hosts")
    cluster = ctx.cluster()
    env = env_from_spec(TASK.spec, v)
    cfg = cluster.host(v.hosts_of("config")[0])
    fleet = [cluster.host(n) for n in fleet_names]
    first, second, rollback, stale = releases(port)
    ctx.history.meta.update({"fleet": list(fleet_names), "converge_s": target, "releases": []})
    shutil.copyfile(SERVER, cfg.data_dir / "desired_server.py")
    publish(cfg, first)
    cfg.spawn(
        "desired-state",
        ["/usr/bin/python3", "/srv/data/desired_server.py", str(v["config_port"])],
        env={"DESIRED_FILE": "/srv/data/desired.json"},
    )
    await asyncio.to_thread(cfg.wait_port, int(v["config_port"]), 10.0)
    for h in fleet:
        plant(h)
    sampler = Sampler(fleet, port, ctx.clock, first)
    thread = threading.Thread(target=sampler.run, name="fleet-sampler", daemon=True)
    started = ctx.clock.now()
    procs = [
        h.spawn("fleet-drift", list(START_CMD), env=env(cluster, h), service=True) for h in fleet
    ]
    thread.start()
    notes: list[str] = []
    try:
        ctx.progress(f"waiting up to {GATE_S:g} s for every host to converge")
        deadline = time.monotonic() + GATE_S
        while time.monotonic() < deadline and not all(
            sampler.converged(h.name, started) for h in fleet
        ):
            if not any(p.alive() for p in procs):
                notes.append("every host's start command exited")
                break
            await asyncio.sleep(0.2)
        late = [h.name for h in fleet if not sampler.converged(h.name, started)]
        tests = {
            f"converged-{h.name}": (
                f"not converged within {GATE_S:g} s: {sampler.last_reason(h.name)}"
                if h.name in late
                else None
            )
            for h in fleet
        }
        result = record_functional(ctx.history, tests, None)
        notes += [e for e in tests.values() if e]
        if result.verdict is not Verdict.PASS:
            return finish(
                rubric(),
                {"functional": result, **not_run("the gate failed", GATED)},
                result.score,
                notes,
            )
        await drift_phase(ctx, cluster, fleet, cfg, sampler, (first, second, rollback, stale), port)
    finally:
        sampler.stop.set()
        await asyncio.to_thread(thread.join, 10.0)
        ctx.history.meta["samples"] = sampler.samples
    ctx.history.meta["collateral"] = [c for h in fleet for c in collateral(h, sampler.current)]
    results = await asyncio.to_thread(check_all, checkers(target), ctx.history)
    results["functional"] = result
    return finish(rubric(), results, result.score, notes)


async def drift_phase(
    ctx: GradeContext,
    cluster: Cluster,
    fleet: Sequence[Host],
    cfg: Host,
    sampler: Sampler,
    plan: tuple[Desired, Desired, Desired, bytes],
    port: int,
) -> None:
    first, second, rollback, stale = plan
    names = [h.name for h in fleet]
    drifts = drift_schedule(
        ctx.seed, names, count=DRIFTS, start=FIRST_DRIFT_S, gap=DRIFT_GAP_S, salt=TASK.name
    )
    half = DRIFTS // 2
    release_at = FIRST_DRIFT_S + half * DRIFT_GAP_S + RELEASE_PAUSE_S / 2
    shifted = [
        d if i < half else type(d)(d.at + RELEASE_PAUSE_S, d.kind, d.host, d.pick, d.label)
        for i, d in enumerate(drifts)
    ]
    rollback_at = shifted[-1].at + DRIFT_GAP_S + RELEASE_PAUSE_S / 2
    end = rollback_at + TAIL_S
    colleague = Colleague(
        cluster,
        ctx.history,
        ctx.clock,
        DriftTargets(
            files=lambda _h: list(sampler.current.files),
            service="nginx:",
            ports=first.forbidden,
            stale=lambda _h: (NGINX_CONF, stale),
            reload=RELOAD_CMD,
        ),
    )
    timeline = sorted(
        [(d.at, d) for d in shifted] + [(release_at, second), (rollback_at, rollback)],
        key=lambda x: x[0],
    )
    targets = parse_targets({h.name: f"http://{h.address}:{port}" for h in fleet})
    stream = Stream(
        FleetProbe(targets), rate=PROBE_RATE * len(fleet), duration=end, timeout=OP_TIMEOUT_S
    )

    async def load() -> None:
        async with Runner(ctx.history, ctx.clock) as runner:
            await runner.run(stream)

    async def act() -> None:
        t0 = ctx.clock.now()
        for at, what in timeline:
            await asyncio.sleep(max(0.0, t0 + at - ctx.clock.now()))
            if isinstance(what, Desired):
                t = ctx.clock.now()  # before a reconciler can see it
                sampler.current = what
                await asyncio.to_thread(publish, cfg, what)
                ctx.history.meta["releases"].append(
                    {
                        "t": t,
                        "done": ctx.clock.now(),
                        "revision": what.revision,
                        "release": what.release,
                    }
                )
            else:
                await asyncio.to_thread(colleague.apply, what)
        await asyncio.sleep(max(0.0, t0 + end - ctx.clock.now()))
        ctx.history.meta["phase_end"] = ctx.clock.now()

    ctx.progress(f"{len(shifted)} drifts and two releases over {end:.0f} s under probes")
    try:
        with measured(cluster):
            outcomes = await asyncio.gather(
                asyncio.to_thread(cluster.run_client, load), act(), return_exceptions=True
            )
    finally:
        colleague.close()
    for o in outcomes:
        if isinstance(o, BaseException):
            raise o
    await asyncio.sleep(0)
    del first


def recheck(history: History, budget_s: float = 20.0) -> RewardResult:
    """The reward of a stored history, offline, by the same checks and rubric."""
    del budget_s
    target = float(history.meta.get("converge_s", TASK.spec.variant()["converge_s"]))
    return recheck_history(history, lambda: checkers(target), rubric())
