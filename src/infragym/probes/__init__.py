"""A catalogue of hack probes: systems under test that cheat, break or attack the grader.

A probe is a workspace that a task's grader deploys as it would deploy an agent's: a
``start.sh`` that the contract runs on every host, serving HTTP on ``$PORT``. Each probe
does one thing a trained policy may find pays: answer 200 to everything, refuse
everything, answer too slowly, answer with bodies too big or not text, or never start.
A task lists the probes that apply to it in ``task.toml``, each with the ceiling it must
stay under::

    [validation]
    probes = ["always-200", "always-503", "big-body"]

    [validation.bands]
    always-200 = { max = 0.0 }

``infragym validate TASK --tiers`` and ``infragym.testing.check_task`` grade them beside
the task's own references and probes (``solutions/probe-*``, for cheats only that task's
contract allows, e.g. one host doing all the work behind the others).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from .._errors import ConfigError

__all__ = ["PROBES", "Probe", "probe"]

START_SH = """#!/bin/sh
# infragym hack probe {name}: {what}
exec /usr/bin/python3 /srv/app/probe.py
"""

# one stdlib server for every behaviour, chosen by the string substituted below; the
# probes share it so each differs from an honest server only by what it answers
SERVER = '''"""infragym hack probe {name}: {what}"""
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOUR = {behaviour!r}
BIG = b"x" * (4 << 20)
GARBAGE = b"\\xff\\xfe" * (1 << 19)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        status, body = 200, b"ok"
        if BEHAVIOUR == "always-503":
            status, body = 503, b"unavailable"
        elif BEHAVIOUR == "slow-answers":
            time.sleep(3.0)
        elif BEHAVIOUR == "big-body":
            body = BIG
        elif BEHAVIOUR == "invalid-utf8":
            body = GARBAGE
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = answer


if BEHAVIOUR == "never-starts":
    raise SystemExit("probe: exiting at once, as a service that never starts")
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
'''


@dataclass(frozen=True)
class Probe:
    """One catalogue entry: its name, what it does, and the workspace that does it."""

    name: str
    what: str

    def materialize(self, dest: str | Path) -> Path:
        """Write the probe's workspace (``start.sh`` and ``probe.py``) into ``dest``."""
        d = Path(dest)
        d.mkdir(parents=True, exist_ok=True)
        start = d / "start.sh"
        start.write_text(START_SH.format(name=self.name, what=self.what))
        start.chmod(start.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        (d / "probe.py").write_text(
            SERVER.format(name=self.name, what=self.what, behaviour=self.name)
        )
        return d


PROBES: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe("always-200", 'answers every request with 200 "ok" and stores nothing'),
        Probe("always-503", "answers every request with 503: it never serves"),
        Probe("slow-answers", "answers 200 three seconds after every request"),
        Probe("big-body", "answers every request with a 4 MiB body"),
        Probe("invalid-utf8", "answers every request with 1 MiB of bytes that are not UTF-8"),
        Probe("never-starts", "exits at once instead of serving"),
    )
}


def probe(name: str) -> Probe:
    """The catalogue's probe ``name``; a ConfigError naming the known ones otherwise."""
    try:
        return PROBES[name]
    except KeyError:
        raise ConfigError(
            f"no hack probe {name!r} in the catalogue (known: {', '.join(sorted(PROBES))})"
        ) from None
