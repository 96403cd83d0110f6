"""Hidden grader of pg-failover: PostgreSQL that fails over without losing a commit.

The variant's database hosts (role ``db``) run ``/bin/sh /srv/app/start.sh`` with the
contract's environment; the clients (psycopg 3 in the client namespace) reach the primary
through a libpq multi-host connection string with ``target_session_attrs=read-write``.
Functional tests gate the reward (the schema, an insert read back on a fresh connection, a
transfer, every host restarted at once keeps the data). Then an open-loop load of bank
transfers, ledger inserts (unique ids) and snapshot reads of the total, every operation
recorded ok / fail / info, while the primary (whichever host it is when the fault fires:
the latest poll of ``pg_is_in_recovery()`` on every host says) is crashed, a replica is
crashed, the primary is paused, and the primary is cut off from the other database hosts
(the clients still reach it). After the last heal: every ledger id and the total are read
through the connection string, and a marker row written through it must reach every
other host, which must be a replica. ``recheck(history)`` gives the same reward offline.
The seed draws the variant only; ids and amounts are fresh randomness.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from infragym.checkers import (
    Availability,
    Checker,
    CheckResult,
    DualPrimary,
    LostInserts,
    TotalInvariant,
    Verdict,
    check_all,
    failover_time,
    faulted_hosts,
)
from infragym.grading import (
    GradeContext,
    GradeOutcome,
    StartAt,
    env_from_spec,
    finish,
    load_under_faults,
    measured,
    not_run,
    record_functional,
)
from infragym.grading import recheck as recheck_history
from infragym.history import Clock, History, OpEvent, OpType
from infragym.nemesis import FaultSpec, FaultTarget, Nemesis, Schedule, ScheduledFault
from infragym.rubric import Criterion, RewardResult, Rubric, gate, linear
from infragym.sandbox import Cluster
from infragym.tasks import Variant, load_task

TASK = load_task(Path(__file__).parent)
logging.getLogger("psycopg").setLevel(logging.CRITICAL)  # cancelled queries to frozen hosts
START_CMD = ("/bin/sh", "/srv/app/start.sh")
UP_S = 40.0  # the connection string reaches a primary within this of the start
CONNECT_TIMEOUT = 2  # libpq's minimum
OP_TIMEOUT_S = 5.0
ACCOUNTS, INITIAL = 16, 1000
TOTAL = ACCOUNTS * INITIAL
INSERT_RATE, TRANSFER_RATE, SNAPSHOT_RATE = 20.0, 10.0, 2.0
MAX_CONNS = 40
MAX_CONNECTING = 6
POLL_S = 0.3
START_S, GAP_S, TAIL_S = 3.0, 7.0, 5.0
FAULT_MARGIN_S = 3.0  # a fault lasts the RTO and this
FINAL_S = 45.0  # after the last heal: the final reads and every host back in the cluster
SETTLE_S = 30.0  # before the restart and before the load: every host a replica again
# then this long before the load: a cluster that has just become whole may still be setting
# up its failover (Patroni records a synchronous standby a few seconds after a promotion,
# and until then promotes nobody), and the first fault strikes START_S into the load
GRACE_S = 10.0
RECOVERY_SLO = 0.8  # "writes available again": a 1 s span with this many ok
ANSWERED_S = 2.0  # ... each answered within this of when it was issued (Recovery)
STEADY_SLO = 0.9
NOT_WHOLE_CAP = 0.25
DATA_CAP = 0.1
FAULTS = (  # (label, kind, fire-time target)
    ("crash-primary", "crash", "primary"),
    ("crash-replica", "crash", "replica"),
    ("pause-primary", "pause", "primary"),
    ("isolate-primary", "partition", "primary"),
)
SCHEMA = (
    "DROP TABLE IF EXISTS accounts, ledger",
    "CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL)",
    "CREATE TABLE ledger (id bigint PRIMARY KEY, amount integer NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now())",
)


# -- addressing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Db:
    """The variant's database hosts and how clients log in."""

    hosts: tuple[str, ...]
    port: int
    dbname: str
    user: str
    password: str
    rto_s: float

    @classmethod
    def of(cls, v: Variant) -> Db:
        return cls(
            v.hosts_of("db"),
            int(v["port"]),
            str(v["db_name"]),
            str(v["db_user"]),
            str(v["db_password"]),
            float(v["rto_s"]),
        )

    def conninfo(self, addresses: Sequence[str], read_write: bool = True) -> str:
        """The clients' libpq string: every host in order (addresses: the client namespace
        resolves no host names), the first that accepts writes."""
        parts = {
            "host": ",".join(addresses),
            "port": str(self.port),
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "connect_timeout": str(CONNECT_TIMEOUT),
            "application_name": "infragym",
            # pg_catalog first, whatever the database's or role's search_path: no function
            # or operator of the service's own shadows pg_is_in_recovery(), sum(), =
            "options": "-c search_path=public",
        }
        if read_write:
            parts["target_session_attrs"] = "read-write"
        return " ".join(f"{k}={_quoted(v)}" for k, v in parts.items())

    @property
    def fault_s(self) -> float:
        return self.rto_s + FAULT_MARGIN_S


def _quoted(v: str) -> str:
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def schedule_of(db: Db) -> Schedule:
    out, t = [], START_S
    for label, kind, target in FAULTS:
        params = (("topology", "isolate"),) if kind == "partition" else ()
        spec = FaultSpec(kind, (f"@{target}",), params)
        out.append(ScheduledFault(t, db.fault_s, spec, label))
        t += db.fault_s + GAP_S
    return Schedule(tuple(out))


# -- the clients -----------------------------------------------------------------------


def _definite(exc: BaseException) -> bool:
    """The server refused the statement (a constraint, read-only, ...): it did not commit.
    A lost connection or a shutdown (SQLSTATE classes 08, 57) leaves the outcome unknown."""
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and not state.startswith(("08", "57", "XX"))


@dataclass
class Clients:
    """Open-loop psycopg clients through the multi-host string, recording every operation,
    and a poller of ``pg_is_in_recovery()`` on every host."""

    db: Db
    addresses: Mapping[str, str]  # host -> address, in order
    history: History
    clock: Clock
    rng: random.Random = field(default_factory=lambda: random.Random(secrets.randbits(63)))
    idle: list[psycopg.AsyncConnection[Any]] = field(default_factory=list)
    polls: list[tuple[float, list[str]]] = field(default_factory=list)
    latest: tuple[float, dict[str, bool | None]] = (0.0, {})
    writer: tuple[float, str | None] = (0.0, None)  # the host that last acknowledged a write
    next_id: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _waiters: collections.deque[asyncio.Future[psycopg.AsyncConnection[Any]]] = field(
        default_factory=collections.deque
    )
    _open: int = 0
    _connecting: int = 0
    # every connection opened and not yet closed: closed by close() whatever became of
    # the task holding it (one dropped by a cancellation warns when collected)
    _unclosed: set[psycopg.AsyncConnection[Any]] = field(default_factory=set)

    @property
    def by_address(self) -> dict[str, str]:
        return {a: h for h, a in self.addresses.items()}

    def _op_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        return await self._open_conn(self.db.conninfo(list(self.addresses.values())))

    async def _open_conn(self, info: str) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(info, autocommit=True)
        if len(self._unclosed) >= 2 * MAX_CONNS:  # those closed elsewhere (`async with`)
            self._unclosed = {c for c in self._unclosed if not c.closed}
        self._unclosed.add(conn)
        return conn

    def node_of(self, conn: psycopg.AsyncConnection[Any]) -> str | None:
        addr = conn.info.hostaddr or conn.info.host
        return self.by_address.get(addr, addr)

    def _background(self, work: Awaitable[Any]) -> None:
        self._keep(asyncio.ensure_future(work))

    def _keep(self, task: asyncio.Task[Any]) -> None:
        """Hold an abandoned task until it ends, and take its exception (nobody waits)."""
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()

    async def _discard(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._unclosed.discard(conn)
        with contextlib.suppress(Exception):
            await conn.close()  # never waits on the network: libpq's PQfinish, at once

    # the pool: an operation takes an idle connection or waits for one; at most
    # MAX_CONNECTING connects run at once (each may wait out a frozen host's connect
    # timeout), at most MAX_CONNS connections are open

    async def acquire(self) -> psycopg.AsyncConnection[Any]:
        if self.idle:
            return self.idle.pop()
        waiter: asyncio.Future[psycopg.AsyncConnection[Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        self._grow()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed one, cancelled before use
                self.release(waiter.result())
            raise

    def release(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def lose(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._open -= 1
        self._background(self._discard(conn))
        self._grow()

    def _grow(self) -> None:
        wanted = sum(not w.done() for w in self._waiters)
        while (
            self._connecting < min(wanted, MAX_CONNECTING)
            and self._open + self._connecting < MAX_CONNS
        ):
            self._connecting += 1
            self._background(self._connect_one())

    async def _connect_one(self) -> None:
        try:
            conn = await self.connect()
        except Exception:
            await asyncio.sleep(0.1)  # every host refused at once: no busy loop
            self._connecting -= 1
            self._grow()
            return
        self._connecting -= 1
        self._open += 1
        self.release(conn)
        self._grow()

    # one operation: (f, key, value, body) -> result recorded

    async def perform(
        self,
        f: str,
        value: Any,
        body: Callable[[psycopg.AsyncConnection[Any]], Awaitable[Any]],
        intended: float,
        committing: bool,
    ) -> None:
        op_id = self._op_id() if f != "insert" else int(value)
        self.history.append(OpEvent(OpType.INVOKE, op_id, f, self.clock.now(), None, value,
                                    intended, None))  # fmt: skip
        state: dict[str, Any] = {"phase": "connect", "node": None}

        async def run() -> Any:
            conn = await self.acquire()
            state["node"] = self.node_of(conn)
            state["conn"] = conn
            state["phase"] = "run"
            try:
                result = await body(conn)
            except BaseException:
                self.lose(conn)
                raise
            self.release(conn)
            return result

        task = asyncio.ensure_future(run())
        left = max(0.05, intended + OP_TIMEOUT_S - self.clock.now())
        try:
            done, _ = await asyncio.wait({task}, timeout=left)
        except asyncio.CancelledError:  # the load stopped: close() ends the operation too
            task.cancel()
            self._keep(task)
            raise
        node = state["node"]
        if not done:
            # drop the connection under the statement: a cancel request would end a commit's
            # wait for its standby and commit it on a primary that may be on its way out
            _drop(state.get("conn"))
            if state["phase"] == "connect":
                task.cancel()
            self._keep(task)
            kind = OpType.INFO if committing and state["phase"] != "connect" else OpType.FAIL
            self._record(kind, op_id, f, value, node, "timed out")
            return
        exc = task.exception()
        if exc is None:
            self._record(OpType.OK, op_id, f, task.result(), node, None)
            return
        definite = state["phase"] == "connect" or not committing or _definite(exc)
        if getattr(exc, "before_commit", False):
            definite = True
        kind = OpType.FAIL if definite else OpType.INFO
        self._record(kind, op_id, f, value, node, f"{type(exc).__name__}: {exc}"[:200])

    def _record(
        self, kind: OpType, op_id: int, f: str, value: Any, node: str | None, error: str | None
    ) -> None:
        self.history.append(OpEvent(kind, op_id, f, self.clock.now(), None, value, None, node,
                                    error))  # fmt: skip
        if kind is OpType.OK and f in ("insert", "transfer") and node is not None:
            self.writer = (self.clock.now(), node)

    # the bodies

    async def insert(self, intended: float) -> None:
        ident, amount = self._op_id(), self.rng.randint(1, 100)

        async def body(conn: psycopg.AsyncConnection[Any]) -> Any:
            cur = await conn.execute(
                "INSERT INTO ledger (id, amount) VALUES (%s, %s)", (ident, amount)
            )
            if cur.rowcount != 1:
                raise _NotDone(f"the insert wrote {cur.rowcount} rows")
            return ident

        await self.perform("insert", ident, body, intended, committing=True)

    async def transfer(self, intended: float) -> None:
        a, b = self.rng.sample(range(1, ACCOUNTS + 1), 2)
        amount = self.rng.randint(1, 50)

        async def body(conn: psycopg.AsyncConnection[Any]) -> Any:
            try:
                await conn.execute("BEGIN")
                for acct, delta in sorted(((a, -amount), (b, amount))):
                    cur = await conn.execute(
                        "UPDATE accounts SET balance = balance + %s WHERE id = %s", (delta, acct)
                    )
                    if cur.rowcount != 1:
                        raise _NotDone(f"account {acct}: {cur.rowcount} rows updated")
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    exc.before_commit = True  # type: ignore[attr-defined]
                raise
            await conn.execute("COMMIT")
            return [a, b, amount]

        await self.perform("transfer", [a, b, amount], body, intended, committing=True)

    async def snapshot(self, intended: float) -> None:
        async def body(conn: psycopg.AsyncConnection[Any]) -> Any:
            cur = await conn.execute("SELECT count(*), coalesce(sum(balance), 0) FROM accounts")
            row = await cur.fetchone()
            return [int(row[0]), int(row[1])] if row else None

        await self.perform("snapshot", None, body, intended, committing=False)

    # the load

    async def stream(
        self, rate: float, duration: float, op: Callable[[float], Awaitable[None]], at: float
    ) -> None:
        tasks = []
        for i in range(int(rate * duration)):
            intended = at + i / rate
            await asyncio.sleep(max(0.0, intended - self.clock.now()))
            tasks.append(asyncio.ensure_future(op(intended)))
        await asyncio.gather(*tasks)

    async def run(self, duration: float, stop: asyncio.Event, at: float) -> None:
        """The three streams for ``duration`` from ``at`` (on ``clock``), and the poller
        of every host's role from now until they end."""
        poller = asyncio.ensure_future(self.poll(stop))
        try:
            await asyncio.gather(
                self.stream(INSERT_RATE, duration, self.insert, at),
                self.stream(TRANSFER_RATE, duration, self.transfer, at),
                self.stream(SNAPSHOT_RATE, duration, self.snapshot, at),
            )
        finally:
            stop.set()
            await poller
            await self.close()

    async def close(self) -> None:
        """End every task of the clients' and close every connection they opened."""
        for w in self._waiters:
            w.cancel()
        self._waiters.clear()
        # a cancelled operation may hand its connection to a new task (lose): until none
        while pending := [t for t in self._tasks if not t.done()]:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.idle.clear()
        for conn in list(self._unclosed):
            await self._discard(conn)
        self._open = self._connecting = 0

    async def poll(self, stop: asyncio.Event) -> None:
        conns: dict[str, psycopg.AsyncConnection[Any] | None] = dict.fromkeys(self.addresses)

        async def in_recovery(c: psycopg.AsyncConnection[Any]) -> bool | None:
            cur = await c.execute("SELECT pg_is_in_recovery()")
            row = await cur.fetchone()
            return bool(row[0]) if row else None

        async def one(host: str) -> bool | None:
            c = conns[host]
            try:
                if c is None or c.closed:
                    info = self.db.conninfo([self.addresses[host]], read_write=False)
                    c = await asyncio.wait_for(self._open_conn(info), 1.0)
                    conns[host] = c
                assert c is not None
                # not wait_for: cancelling the query makes psycopg send a cancel request
                # and wait up to 10 s for a frozen host to answer it, the poller blind
                # meanwhile; the connection is dropped instead
                query = asyncio.ensure_future(in_recovery(c))
                done, _ = await asyncio.wait({query}, timeout=0.8)
                if not done:
                    _drop(c)
                    self._keep(query)
                    raise TimeoutError
                return query.result()
            except (TimeoutError, Exception):
                c = conns.pop(host, None)
                conns[host] = None
                if c is not None:
                    self._background(self._discard(c))
                return None

        while not stop.is_set():
            t = self.clock.now()
            hosts = list(self.addresses)
            got = await asyncio.gather(*(one(h) for h in hosts))
            state = dict(zip(hosts, got, strict=True))
            self.latest = (t, state)
            self.polls.append((round(t, 3), [h for h, r in state.items() if r is False]))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
        for c in conns.values():
            if c is not None:
                await self._discard(c)

    def role_now(self, want_primary: bool) -> str | None:
        """The primary: the host that acknowledged the clients' latest write, if one did
        in the last second, whatever the polls say (a service could show the poller a
        decoy), else the first host the latest poll (within 3 s) found primary. A replica:
        the first host the latest poll found in recovery, never that writing host."""
        t_w, writer = self.writer
        writing = writer if self.clock.now() - t_w <= 1.0 else None
        if want_primary and writing is not None:
            return writing  # the host the clients' writes land on, whatever the polls say
        t, state = self.latest
        if self.clock.now() - t > 3.0:
            return None
        for host in self.addresses:
            r = state.get(host)
            if host == writing:
                continue
            if r is not None and (r is False) == want_primary:
                return host
        return None


def _drop(conn: psycopg.AsyncConnection[Any] | None) -> None:
    """Shut a connection's socket down (what a client's lost network does): the statement
    waiting on it fails at once, and the server is sent nothing, no cancel request."""
    if conn is None or conn.closed:
        return
    with contextlib.suppress(OSError, psycopg.Error):
        fd = os.dup(conn.pgconn.socket)
        with socket.socket(fileno=fd) as sock:
            sock.shutdown(socket.SHUT_RDWR)


class _NotDone(Exception):
    """The statement ran but did not do what it said (a store that drops writes)."""

    sqlstate = "IG000"


# -- functional tests ------------------------------------------------------------------


async def until_primary(c: Clients, within: float) -> str | None:
    """Why the connection string found no primary within ``within`` seconds (or None)."""
    deadline = time.monotonic() + within
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            conn = await asyncio.wait_for(c.connect(), max(1.0, deadline - time.monotonic()))
            await conn.close()
            return None
        except Exception as exc:
            last = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        except TimeoutError:
            last = "timed out"
        await asyncio.sleep(0.5)
    return f"the connection string reached no primary within {within:g} s ({last})"


async def functional(
    c: Clients, restart_all: Callable[[], Awaitable[None]]
) -> dict[str, str | None]:
    tests: dict[str, str | None] = {}
    conn = await c.connect()
    try:
        try:
            for stmt in SCHEMA:
                await conn.execute(stmt)
            await conn.execute(
                "INSERT INTO accounts SELECT g, %s FROM generate_series(1, %s) g",
                (INITIAL, ACCOUNTS),
            )
            tests["schema"] = None
        except Exception as exc:
            tests["schema"] = f"creating the tables failed: {exc}"
            return tests
        marker = -secrets.randbelow(1 << 40) - 1  # negative: the load's ids are positive
        try:
            cur = await conn.execute("INSERT INTO ledger (id, amount) VALUES (%s, 7)", (marker,))
            assert cur.rowcount == 1, f"the insert wrote {cur.rowcount} rows"
            async with await c.connect() as fresh:
                cur = await fresh.execute("SELECT amount FROM ledger WHERE id = %s", (marker,))
                row = await cur.fetchone()
            assert row is not None and row[0] == 7, f"a fresh connection read {row!r}"
            tests["insert-read-back"] = None
        except Exception as exc:
            tests["insert-read-back"] = f"{type(exc).__name__}: {exc}"
        try:
            await conn.execute("BEGIN")
            await conn.execute("UPDATE accounts SET balance = balance - 5 WHERE id = 1")
            await conn.execute("UPDATE accounts SET balance = balance + 5 WHERE id = 2")
            await conn.execute("COMMIT")
            cur = await conn.execute("SELECT balance FROM accounts WHERE id IN (1, 2) ORDER BY id")
            got = [r[0] for r in await cur.fetchall()]
            assert got == [INITIAL - 5, INITIAL + 5], f"balances after a transfer: {got}"
            await conn.execute("UPDATE accounts SET balance = %s WHERE id IN (1, 2)", (INITIAL,))
            tests["transfer"] = None
        except Exception as exc:
            tests["transfer"] = f"{type(exc).__name__}: {exc}"
    finally:
        await c._discard(conn)
    if any(tests.values()):
        return tests
    await settle(c, SETTLE_S)
    await restart_all()
    late = await until_primary(c, UP_S)
    if late:
        tests["restart-keeps-data"] = f"after every host restarted: {late}"
        return tests
    try:
        async with await c.connect() as conn2:
            cur = await conn2.execute("SELECT amount FROM ledger WHERE id = %s", (marker,))
            row = await cur.fetchone()
            cur = await conn2.execute("SELECT count(*), sum(balance) FROM accounts")
            agg = await cur.fetchone()
        assert row is not None, "the row inserted before the restart is gone"
        assert agg is not None and tuple(agg) == (ACCOUNTS, TOTAL), f"accounts: {agg}"
        tests["restart-keeps-data"] = None
    except Exception as exc:
        tests["restart-keeps-data"] = f"{type(exc).__name__}: {exc}"
    return tests


async def first_phase(
    c: Clients, restart_all: Callable[[], Awaitable[None]]
) -> tuple[str | None, dict[str, str | None], dict[str, str]]:
    """Wait for a primary, run the functional tests, then let the cluster settle (whole,
    and ``GRACE_S`` more): why no primary came (or None), the tests, each host's state
    before the load."""
    late = await until_primary(c, UP_S)
    if late:
        return late, {}, {}
    tests = await functional(c, restart_all)
    if any(tests.values()):
        return None, tests, {}
    await settle(c, SETTLE_S)
    await asyncio.sleep(GRACE_S)
    return None, tests, await settle(c, SETTLE_S)


# -- after the last heal -----------------------------------------------------------------


async def replicas_with(
    c: Clients, marker: int, primary: str | None, deadline: float
) -> dict[str, str]:
    """Each host's state after ``marker`` was written through ``primary``: "primary",
    "replica" (in recovery, with the row), or what is wrong; polled until ``deadline``."""
    hosts: dict[str, str] = dict.fromkeys(c.addresses, "not reached")
    if primary in hosts:
        hosts[primary] = "primary"
    for host, addr in c.addresses.items():
        while host != primary:
            try:
                info = c.db.conninfo([addr], read_write=False)
                async with await psycopg.AsyncConnection.connect(info, autocommit=True) as rc:
                    cur = await rc.execute(
                        "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM ledger WHERE id = %s)",
                        (marker,),
                    )
                    row = await cur.fetchone()
                if row is not None and row[0] and row[1]:
                    hosts[host] = "replica"
                    break
                hosts[host] = "a primary too" if row and not row[0] else "lacks the marker row"
            except Exception as exc:
                hosts[host] = f"{type(exc).__name__}: {str(exc).strip()[:120]}"
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    return hosts


async def write_marker(
    c: Clients, read_ids: bool = False
) -> tuple[int, str | None, list[int] | None]:
    """A row written through the connection string: its id, the host that took it, and
    (``read_ids``) every id of the load read first."""
    marker = -secrets.randbelow(1 << 40) - 1
    async with await c.connect() as conn:
        ids = None
        if read_ids:
            cur = await conn.execute("SELECT id FROM ledger WHERE id >= 0")
            ids = [int(r[0]) for r in await cur.fetchall()]
        await conn.execute("INSERT INTO ledger (id, amount) VALUES (%s, 1)", (marker,))
        return marker, c.node_of(conn), ids


async def settle(c: Clients, within: float) -> dict[str, str]:
    """Give the cluster ``within`` seconds to be whole (a primary, every other host a
    replica with a row written through it) before the next phase; each host's state."""
    deadline = time.monotonic() + within
    if await until_primary(c, within) is not None:
        return dict.fromkeys(c.addresses, "no primary")
    try:
        marker, primary, _ = await write_marker(c)
    except Exception as exc:
        return dict.fromkeys(c.addresses, f"a write failed: {exc}"[:200])
    return await replicas_with(c, marker, primary, deadline)


async def final_state(c: Clients, within: float) -> tuple[list[int] | None, dict[str, str]]:
    """Every ledger id and the total through the connection string (recorded as a
    ``snapshot`` operation), then a marker row that must reach every other host, a
    replica: each host's state ("primary", "replica", or what is wrong)."""
    deadline = time.monotonic() + within
    if await until_primary(c, within) is not None:
        return None, dict.fromkeys(c.addresses, "no primary")
    try:
        await c.snapshot(c.clock.now())
        try:
            marker, primary, ids = await write_marker(c, read_ids=True)
        except Exception as exc:
            return None, dict.fromkeys(c.addresses, f"final write failed: {exc}"[:200])
        return ids, await replicas_with(c, marker, primary, deadline)
    finally:
        await c.close()


# -- checks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    """After each failure of the primary, writes (``f``) are answered again (80 % ok over a
    second) within ``rto_s`` of the fault's start. Score: the fraction of such windows.

    A write counts only when a host the fault left answered it (a primary cut off from
    its standbys that goes on acknowledging is no failover), within ``ANSWERED_S`` of
    its being issued, and before the fault healed. Writes are placed by when they were
    issued, and a client waits up to ``OP_TIMEOUT_S`` (5 s) for an answer: without the
    2 s bound, writes issued at 8 s and answered by a failover at 13 s made it look 5 s
    faster than it was (robust's recorded gradings: pause-primary 6.0 s by issue time,
    9.1 s by this rule), and a failover slower than the RTO passed. 2 s is libpq's least
    ``connect_timeout``: one hop past a frozen first host of the connection string.
    Without the heal bound, writes that waited for the failed primary to come back (a
    crashed host restarted, a frozen one thawed) would pass for a failover. The fault
    lasts ``RTO_S`` and more, so a failover in time leaves a whole second of writes
    answered inside the window."""

    rto_s: float
    f: tuple[str, ...] = ("insert", "transfer")
    name: str = "recovery"

    def check(self, history: History) -> CheckResult:
        writes = [op for op in history.operations() if op.f in self.f]
        skipped = {e.label for e in history.faults if e.detail.get("skipped")}
        details = {(e.label, e.time): e.detail for e in history.faults if e.action.value == "apply"}
        figures: dict[str, float | None] = {}
        # a primary failure the grader could not aim (no host took the clients' writes or
        # called itself primary when it fired) counts as never recovered: writes had no
        # primary then, and a service that hid its primary must not escape the window
        for label in sorted(skipped):
            if label.endswith("-primary"):
                figures[label] = None
        for w in history.fault_windows():
            if not w.label.endswith("-primary") or w.label in skipped:
                continue
            # writes count only from the hosts the fault left: a primary cut off that goes
            # on acknowledging (nothing failed over) is not a recovery
            gone = faulted_hosts(w.fault, w.targets, details.get((w.label, w.start), {}))
            served = [
                (op.intended, op.ok and op.node not in gone
                 and op.complete <= min(w.end, op.intended + ANSWERED_S))
                for op in writes
                if w.contains(op.intended)
            ]  # fmt: skip
            figures[w.label] = failover_time(w.start, w.end, served, RECOVERY_SLO)
        if not figures:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "no primary failed", judged=0)
        late = {k: v for k, v in figures.items() if v is None or v > self.rto_s}
        shown = ", ".join(
            f"{k} {'never' if v is None else f'{v:.1f} s'}" for k, v in figures.items()
        )
        return CheckResult(
            self.name, Verdict.PASS if not late else Verdict.FAIL, 1 - len(late) / len(figures),
            f"{len(figures) - len(late)} of {len(figures)} primary failures had writes back "
            f"within {self.rto_s:g} s ({shown})",
            {f"{k}.recovery_s": v for k, v in figures.items()}, judged=len(figures),
        )  # fmt: skip


@dataclass(frozen=True)
class ClusterWhole:
    """At the end every host is back: one primary, and every other host a replica that has
    the marker row written through the primary (``history.meta["final_hosts"]``)."""

    name: str = "cluster-whole"

    def check(self, history: History) -> CheckResult:
        hosts = history.meta.get("final_hosts")
        if not isinstance(hosts, dict) or not hosts:
            return CheckResult(self.name, Verdict.UNKNOWN, 0.0, "not read", judged=0)
        states = list(hosts.values())
        good = states.count("primary") == 1 and states.count("replica") == len(states) - 1
        shown = ", ".join(f"{h}: {s}" for h, s in hosts.items())
        ok_hosts = sum(s in ("primary", "replica") for s in states)
        return CheckResult(
            self.name, Verdict.PASS if good else Verdict.FAIL,
            1.0 if good else ok_hosts / len(states) / 2, shown, judged=len(states),
        )  # fmt: skip


def checkers(db: Db) -> list[Checker]:
    return [
        LostInserts(f="insert", final_key="final_ids"),
        TotalInvariant(TOTAL, f="snapshot", index=1),
        # several hosts primary for the RTO on end: more than a failover's overlap
        DualPrimary(writes=("insert", "transfer"), polls_key="primary_polls", persist_s=db.rto_s),
        Availability(slo=STEADY_SLO, scope="steady", f="insert", name="writes-steady"),
        Availability(slo=STEADY_SLO, f="insert", name="availability"),
        Recovery(db.rto_s),
        ClusterWhole(),
    ]


def rubric() -> Rubric:
    """Gates first, then weighted properties.

    - functional (gate, cap 0): every functional test passes.
    - lost-inserts, total-invariant, dual-primary (gates, cap 0.1): no acknowledged row
      lost, the total never other than the initial one, never two primaries acknowledging.
    - writes-steady (gate, cap 0.25): >= 90 % of inserts ok outside fault windows.
    - cluster-whole (gate, cap 0.25): every host back, one primary, the others replicas
      with the last row: a single PostgreSQL with no replica cannot pass it.
    - recovery (weight 3): the fraction of primary failures with writes back within RTO_S.
    - availability (weight 1): inserts ok over the whole load, 0 at 45 %, full at 70 %
      (each primary failure takes its failover time away).
    """
    return Rubric(
        [
            gate("functional"),
            gate("lost-inserts", cap=DATA_CAP, min_judged=100),
            gate("total-invariant", cap=DATA_CAP, min_judged=20),
            gate("dual-primary", cap=DATA_CAP, min_judged=100),
            gate("writes-steady", cap=NOT_WHOLE_CAP, min_judged=100),
            gate("cluster-whole", cap=NOT_WHOLE_CAP, min_judged=2),
            Criterion("recovery", weight=3.0, min_judged=2),
            Criterion(
                "availability",
                weight=1.0,
                score_fn=linear(0.45, 0.7, "availability"),
                min_judged=500,
            ),
        ]
    )


GATED = ("lost-inserts", "total-invariant", "dual-primary", "writes-steady", "cluster-whole",
         "recovery", "availability")  # fmt: skip


# -- the grading -----------------------------------------------------------------------------


async def grade(ctx: GradeContext) -> GradeOutcome:
    db = Db.of(ctx.variant)
    ctx.progress(f"building {len(db.hosts)} database hosts")
    cluster = ctx.cluster()
    env = env_from_spec(TASK.spec, ctx.variant)
    addresses = {h: cluster.host(h).address for h in db.hosts}
    ctx.history.meta["db"] = {"hosts": list(db.hosts), "rto_s": db.rto_s}
    for h in cluster.hosts:
        h.spawn("pg", list(START_CMD), env=env(cluster, h), service=True)
    clients = Clients(db, addresses, ctx.history, ctx.clock)
    notes: list[str] = []

    async def restart_all() -> None:
        def bounce() -> None:
            for h in cluster.hosts:
                h.kill_all()
            for h in cluster.hosts:
                h.restart()

        await asyncio.to_thread(bounce)

    ctx.progress("waiting for a primary, then the functional tests")
    problem, tests, before = await asyncio.to_thread(
        cluster.run_client, lambda: first_phase(clients, restart_all)
    )
    ctx.history.meta["hosts_before_load"] = before
    notes += [problem] if problem else []
    notes += [f"functional test {n} failed: {e}" for n, e in tests.items() if e]
    result = record_functional(ctx.history, tests, problem)
    (ctx.artifacts_dir / "functional.json").write_text(
        json.dumps({"score": result.score, "tests": tests}, indent=2, ensure_ascii=False)
    )
    if result.verdict is not Verdict.PASS:
        skipped = not_run("the functional contract failed", GATED)
        return finish(rubric(), {"functional": result, **skipped}, result.score, notes)
    results = await under_faults(ctx, db, cluster, clients, notes)
    results["functional"] = result
    return finish(rubric(), results, result.score, notes)


async def under_faults(
    ctx: GradeContext, db: Db, cluster: Cluster, clients: Clients, notes: list[str]
) -> dict[str, CheckResult]:
    schedule = schedule_of(db)
    (ctx.artifacts_dir / "schedule.json").write_text(json.dumps(schedule.to_json(), indent=2))
    targets = {
        "primary": FaultTarget(lambda _c: clients.role_now(True), "the primary", 5.0),
        "replica": FaultTarget(lambda _c: clients.role_now(False), "a replica", 5.0),
    }
    duration = schedule.end + TAIL_S

    async def load(start_at: StartAt) -> None:
        await clients.run(duration, asyncio.Event(), at=await start_at())

    ctx.progress(f"load for {duration:.0f} s under {len(schedule.faults)} faults")
    async with Nemesis(cluster, ctx.history, ctx.clock, targets=targets) as nemesis:
        # the first fault is START_S after the shared start: a first poll names the primary
        await load_under_faults(cluster, nemesis, schedule, ctx.clock, load)
    ctx.history.meta["primary_polls"] = clients.polls
    ctx.progress("final reads and every host back in the cluster")
    with measured(cluster):  # bounded by FINAL_S: timed like the load
        ids, hosts = await asyncio.to_thread(
            cluster.run_client, lambda: final_state(clients, FINAL_S)
        )
    if ids is not None:
        ctx.history.meta["final_ids"] = ids
    ctx.history.meta["final_hosts"] = hosts
    ops = ctx.history.operations()
    counts = {t.value: sum(op.outcome is t for op in ops) for t in OpType if t is not OpType.INVOKE}
    notes.append(f"workload: {len(ops)} operations, "
                 + ", ".join(f"{k} {v}" for k, v in counts.items()))  # fmt: skip
    skipped = [e.label for e in ctx.history.faults if e.detail.get("skipped")]
    if skipped:
        notes.append(f"faults skipped (no host in that role): {', '.join(skipped)}")
    ctx.progress("checking the history")
    return await asyncio.to_thread(check_all, checkers(db), ctx.history)


def recheck(history: History, budget_s: float = 20.0) -> RewardResult:
    """The reward of a stored history, offline (the RTO it recorded)."""
    del budget_s
    db = Db.of(TASK.spec.variant())
    meta = history.meta.get("db")
    if isinstance(meta, dict):
        db = Db(
            tuple(meta["hosts"]), db.port, db.dbname, db.user, db.password, float(meta["rto_s"])
        )
    return recheck_history(history, lambda: checkers(db), rubric())
