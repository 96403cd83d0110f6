"""A run's store: DIR/run.sqlite holds the run's configuration and one row per episode.

The store is what makes a run survive its process. A run directory holds one run: its
configuration (task, agent, model, seeds, environment options, platform version) and, per
seed, the episode's status, outcome, timings, trajectory and artefacts directory. Rows move
``pending -> running -> done | platform-failed`` (and ``running -> pending`` when a Ray
attempt is lost with its node, to be tried again); each move is one short transaction in
WAL mode, so a process killed at any point leaves the store consistent.

Opening a directory that holds a run of the same configuration resumes it:

- ``done`` episodes are kept and not rerun;
- ``running`` episodes (their process died) are rerun from scratch: their artefacts are
  removed first;
- ``platform-failed`` episodes are retried too: a platform failure is the platform's, not
  the agent's, so the seed has no reward yet (``attempts`` counts the tries).

``trajectories.jsonl`` is derived from the store: its lines are written only for committed
rows, and resuming rewrites it from the ``done`` rows, so a crash between commit and write
can neither duplicate nor lose an episode. One process at a time runs a directory (an
advisory lock on the database file, released by the kernel when the process dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigError

RUN_STORE_FILE = "run.sqlite"
STORE_SCHEMA_VERSION = 1
STATUSES = ("pending", "running", "done", "platform-failed")
FINISHED = ("done", "platform-failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (
    seed INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    agent TEXT NOT NULL,
    model TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'platform-failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reward REAL,
    functional REAL,
    breakdown TEXT,
    end_reason TEXT,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    wall_s REAL,
    artifacts_dir TEXT,
    info TEXT,
    grade TEXT,
    trajectory TEXT
);
"""


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode as the store holds it (``grade`` and ``trajectory`` are JSON text)."""

    seed: int
    task: str
    agent: str
    model: str | None
    status: str
    attempts: int
    reward: float | None
    functional: float | None
    breakdown: dict[str, float]
    end_reason: str | None
    error: str | None
    started_at: float | None
    finished_at: float | None
    wall_s: float | None
    artifacts_dir: str | None
    info: dict[str, Any]
    grade: str | None
    trajectory: str | None

    def summary(self) -> dict[str, Any]:
        """The row without its bulky JSON (what ``infragym runs`` shows)."""
        return {
            "seed": self.seed,
            "status": self.status,
            "attempts": self.attempts,
            "reward": self.reward,
            "functional": self.functional,
            "breakdown": self.breakdown,
            "end_reason": self.end_reason,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "wall_s": self.wall_s,
            "artifacts_dir": self.artifacts_dir,
        }


_COLUMNS = tuple(EpisodeRecord.__dataclass_fields__)


def _record(row: sqlite3.Row) -> EpisodeRecord:
    d = dict(row)
    d["breakdown"] = json.loads(d["breakdown"]) if d["breakdown"] else {}
    d["info"] = json.loads(d["info"]) if d["info"] else {}
    return EpisodeRecord(**d)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL: a commit survives the process being killed (not a power cut)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def describe_difference(there: Mapping[str, Any], here: Mapping[str, Any]) -> str:
    """``key: X there, Y here`` for every key whose value differs."""
    parts = []
    for key in sorted(set(there) | set(here)):
        a, b = there.get(key), here.get(key)
        if a != b:
            parts.append(f"{key}: {json.dumps(a)} there, {json.dumps(b)} here")
    return "; ".join(parts)


class RunStore:
    """The store of one run directory. Make one with :meth:`open` (to run or resume) or
    :func:`read_run` (to look). Safe to call from several threads: one connection behind a
    lock, one short transaction per change."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection, lock_fd: int | None) -> None:
        self.run_dir = run_dir
        self.path = run_dir / RUN_STORE_FILE
        self._conn = conn
        self._lock = threading.Lock()
        self._lock_fd = lock_fd

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, run_dir: str | Path, config: Mapping[str, Any], seeds: Sequence[int]) -> RunStore:
        """The store of ``run_dir`` for a run of ``config`` over ``seeds``: created when the
        directory holds no run, resumed when it holds one of the same configuration (stale
        ``running`` and ``platform-failed`` rows back to ``pending``, their artefacts
        removed), refused when its configuration differs or another process runs it."""
        from ._trajectory import TRAJECTORIES_FILE

        run_dir = Path(run_dir)
        path = run_dir / RUN_STORE_FILE
        if not path.exists() and (run_dir / TRAJECTORIES_FILE).exists():
            raise ConfigError(
                f"{run_dir} already holds the {TRAJECTORIES_FILE} of an earlier run without "
                f"a run store ({RUN_STORE_FILE}): it cannot be resumed and this run's "
                "episodes would be added to it; give another artifacts directory or "
                f"delete {run_dir}"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise ConfigError(
                f"another process is running the run in {run_dir}: wait for it to end "
                "(or stop it), or give another directory"
            ) from None
        conn = _connect(path)
        store = cls(run_dir, conn, lock_fd)
        try:
            store._start(dict(config), list(seeds))
        except BaseException:
            store.close()
            raise
        return store

    def _start(self, config: dict[str, Any], seeds: list[int]) -> None:
        config = {**config, "seeds": sorted(seeds)}
        with self._tx() as c:
            c.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            row = c.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
            if row is None:
                now = time.time()
                c.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema_version", str(STORE_SCHEMA_VERSION)),
                        ("config", json.dumps(config, sort_keys=True)),
                        ("created_at", repr(now)),
                    ],
                )
                c.executemany(
                    "INSERT INTO episodes (seed, task, agent, model, status, artifacts_dir) "
                    "VALUES (?, ?, ?, ?, 'pending', ?)",
                    [
                        (
                            s,
                            config.get("task"),
                            config.get("agent"),
                            config.get("model"),
                            str(self.episode_dir(s)),
                        )
                        for s in sorted(seeds)
                    ],
                )
                return
            there = json.loads(row[0])
            if there != config:
                raise ConfigError(
                    f"{self.run_dir} holds a run of another configuration ("
                    f"{describe_difference(there, config)}): resume it with the same "
                    "task, agent, seeds and options, or give another directory"
                )
            stale = [
                r[0]
                for r in c.execute(
                    "SELECT seed FROM episodes WHERE status IN ('running', 'platform-failed')"
                )
            ]
            c.execute(
                "UPDATE episodes SET status = 'pending' "
                "WHERE status IN ('running', 'platform-failed')"
            )
        for s in stale:  # rerun from scratch: nothing of the dead attempt is kept
            shutil.rmtree(self.episode_dir(s), ignore_errors=True)
        self.rewrite_trajectories()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the run's lock
                self._lock_fd = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction (the caller BEGINs it), committed on success, rolled back on
        any error."""
        with self._lock:
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    # -- reading ------------------------------------------------------------------------

    def episode_dir(self, seed: int) -> Path:
        return self.run_dir / f"seed{seed}"

    def config(self) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        if row is None:
            raise ConfigError(f"{self.path} holds no run configuration (not a run store?)")
        value: dict[str, Any] = json.loads(row[0])
        return value

    def episodes(self) -> list[EpisodeRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM episodes ORDER BY seed"
            ).fetchall()
        return [_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT status, COUNT(*) FROM episodes GROUP BY status"
            ).fetchall()
        got = {r[0]: r[1] for r in rows}
        return {s: int(got.get(s, 0)) for s in STATUSES}

    # -- writing ------------------------------------------------------------------------

    def mark_running(self, seed: int) -> None:
        with self._tx() as c:
            c.execute("BEGIN IMMEDIATE")
            cur = c.execute(
                "UPDATE episodes SET status = 'running', attempts = attempts + 1, "
                "started_at = ?, finished_at = NULL, reward = NULL, functional = NULL, "
                "breakdown = NULL, end_reason = NULL, error = NULL, wall_s = NULL, "
                "info = NULL, grade = NULL, trajectory = NULL "
                "WHERE seed = ? AND status = 'pending'",
                (time.time(), seed),
            )
            if cur.rowcount != 1:
                raise ConfigError(f"episode of seed {seed} is not pending in {self.path}")

    def requeue(self, seed: int) -> None:
        """A running attempt was lost (its worker or node died): back to ``pending``, to be
        tried again; ``attempts`` keeps counting."""
        with self._tx() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute(
                "UPDATE episodes SET status = 'pending' WHERE seed = ? AND status = 'running'",
                (seed,),
            )

    def finish(
        self,
        seed: int,
        *,
        reward: float | None,
        functional: float | None,
        breakdown: Mapping[str, float],
        end_reason: str | None,
        error: str | None,
        wall_s: float,
        info: Mapping[str, Any],
        grade: str | None,
        trajectory: str,
    ) -> None:
        """Record a finished episode: ``done`` with a reward, ``platform-failed`` without.
        A row is finished once: a ``done`` or ``platform-failed`` one is left as it is (a
        ``pending`` one is finished too: an episode given up on after a lost attempt)."""
        status = "platform-failed" if reward is None else "done"
        with self._tx() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute(
                "UPDATE episodes SET status = ?, reward = ?, functional = ?, breakdown = ?, "
                "end_reason = ?, error = ?, finished_at = ?, wall_s = ?, info = ?, grade = ?, "
                "trajectory = ? WHERE seed = ? AND status IN ('pending', 'running')",
                (
                    status,
                    reward,
                    functional,
                    json.dumps(dict(breakdown)),
                    end_reason,
                    error,
                    time.time(),
                    wall_s,
                    json.dumps(dict(info), default=str),
                    grade,
                    trajectory,
                    seed,
                ),
            )

    def rewrite_trajectories(self) -> None:
        """``trajectories.jsonl`` anew from the finished rows, in the order they finished, as
        they were first written (atomically): a resume with nothing to run changes nothing."""
        from ._trajectory import TRAJECTORIES_FILE

        dest = self.run_dir / TRAJECTORIES_FILE
        tmp = dest.with_name(f".{TRAJECTORIES_FILE}.tmp")
        with self._lock:
            rows = self._conn.execute(
                "SELECT trajectory FROM episodes WHERE status IN ('done', 'platform-failed') "
                "AND trajectory IS NOT NULL ORDER BY finished_at, seed"
            )
            with tmp.open("w", encoding="utf-8") as fh:
                for (line,) in rows:
                    fh.write(line + "\n")
        if tmp.stat().st_size == 0 and not dest.exists():
            tmp.unlink()
            return
        tmp.replace(dest)


def read_run(run_dir: str | Path) -> RunStore:
    """The store of a run directory, to look at (no lock taken, nothing changed)."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_STORE_FILE
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} holds no run store ({RUN_STORE_FILE}): give a directory that "
            "`infragym run ... --out DIR` wrote"
        )
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
    )
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("SELECT 1 FROM meta LIMIT 1")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"{path} is not a run store ({exc})") from None
    return RunStore(run_dir, conn, None)
