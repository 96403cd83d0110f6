"""A failover controller of its own for PostgreSQL 15 (no Patroni): one per host.

- etcd 3.4 (a member per host, started here) holds one key, the leader's name, with a
  TTL: the primary renews it every half second by compare-and-swap (v2 API, prevValue);
  whoever holds it may be primary, nobody else.
- Every host's synchronous_standby_names is ANY 1 of the other two: a commit is
  acknowledged once one standby has flushed it. When the key is gone, the standbys
  compare the WAL they received and the one with the most takes the key (compare-and-swap,
  prevExist=false) and promotes itself: it has every acknowledged commit. An election
  needs every host but the failed one to answer, so no standby that might hold the only
  copy of a commit is skipped.
- A primary that could not renew the key for TTL - 1 s (counted from when it sent the
  last renewal that succeeded) kills its PostgreSQL: it is gone before anyone else may
  take the key. Frozen, it acknowledges nothing either: its standbys have left it.
- A host that was primary (a marker file says so) and returns, or was fenced, rewinds its
  data from the leader (pg_rewind, or a fresh base backup when that fails) and follows it
  as a standby; a standby's data just follows (rewinding it would end its recovery and
  write WAL of its own). A standby that does not stream for 10 s from a leader that
  answers copies the leader afresh.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg

BIN = "/usr/lib/postgresql/15/bin"
ME = os.environ["NODE_ID"]
ADDR = os.environ["NODE_ADDRESS"]
PORT = os.environ["PORT"]
PEERS = dict(p.split("=", 1) for p in os.environ["PEERS"].split(","))
OTHERS = [n for n in PEERS if n != ME]
DATA = os.path.join(os.environ["DATA_DIR"], "pg")
ETCD_DATA = os.path.join(os.environ["DATA_DIR"], "etcd")
WAS_PRIMARY = os.path.join(os.environ["DATA_DIR"], "pgha-was-primary")
DB, USER, PASSWORD = os.environ["DB_NAME"], os.environ["DB_USER"], os.environ["DB_PASSWORD"]
TTL = 4  # seconds: failure detection; the RTO is 10-12 s
LOOP = 0.5
KEY = "/v2/keys/pgha/leader"
INIT_KEY = "/v2/keys/pgha/initialized"
ETCD_URLS = [f"http://{ADDR}:2379"] + [f"http://{PEERS[n]}:2379" for n in OTHERS]


def log(msg):
    print(time.strftime("%H:%M:%S"), f"pgha[{ME}]:", msg, flush=True)


# -- etcd ----------------------------------------------------------------------------


class EtcdDown(Exception):
    pass


def etcd(method, path, params=None, form=None, deadline=None):
    """(status, body) from the first etcd member that answers (before ``deadline``, a
    time.monotonic())."""
    query = "?" + urllib.parse.urlencode(params) if params else ""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    for base in ETCD_URLS:
        timeout = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
        if timeout < 0.05:
            break
        req = urllib.request.Request(base + path + query, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read() or b"{}")
            except ValueError:
                body = {}
            if e.code in (404, 412):
                return e.code, body
        except (OSError, ValueError):
            pass
    raise EtcdDown(f"{method} {path}: no etcd member answered")


def leader():
    """The leader key's value (a linearizable read), or None."""
    status, body = etcd("GET", KEY, {"quorum": "true"})
    return body["node"]["value"] if status == 200 else None


def take_key():
    status, _ = etcd("PUT", KEY, {"prevExist": "false"}, {"value": ME, "ttl": TTL})
    return status in (200, 201)


def renew_key(deadline):
    status, _ = etcd("PUT", KEY, {"prevValue": ME}, {"value": ME, "ttl": TTL}, deadline)
    return status == 200


def start_etcd():
    cluster = ",".join(f"{n}=http://{a}:2380" for n, a in PEERS.items())
    os.makedirs(ETCD_DATA, exist_ok=True)
    state = "existing" if os.path.isdir(os.path.join(ETCD_DATA, "member")) else "new"
    with open("/srv/logs/etcd.log", "ab") as out:  # etcd keeps its own copy of the fd
        return subprocess.Popen(
            [
                "/usr/bin/etcd",
                "--name",
                ME,
                "--data-dir",
                ETCD_DATA,
                "--listen-peer-urls",
                f"http://{ADDR}:2380",
                "--initial-advertise-peer-urls",
                f"http://{ADDR}:2380",
                "--listen-client-urls",
                f"http://{ADDR}:2379",
                "--advertise-client-urls",
                f"http://{ADDR}:2379",
                "--initial-cluster",
                cluster,
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                "pgha",
                "--enable-v2=true",
                "--heartbeat-interval",
                "100",
                "--election-timeout",
                "1000",
                "--logger",
                "zap",
                "--log-level",
                "error",
            ],
            stdout=out,
            stderr=out,
        )


# -- PostgreSQL --------------------------------------------------------------------------


class Postgres:
    def __init__(self):
        self.proc = None
        self.following = None  # the leader primary_conninfo names

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def write_conf(self, follow, standby):
        """The node's own settings (pg_rewind copies the others from the source)."""
        names = ", ".join(f'"{n}"' for n in OTHERS)
        lines = [f"synchronous_standby_names = 'ANY 1 ({names})'"]
        if follow:
            info = (
                f"host={PEERS[follow]} port={PORT} user=replicator password={PASSWORD} "
                f"application_name={ME} connect_timeout=2"
            )
            lines.append(f"primary_conninfo = '{info}'")
        with open(os.path.join(DATA, "failover.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        signal_file = os.path.join(DATA, "standby.signal")
        if standby:
            open(signal_file, "w").close()
        elif os.path.exists(signal_file):
            os.unlink(signal_file)
        self.following = follow

    def start(self, follow, standby=True):
        if not standby:
            mark_primary(True)
        for f in (
            os.path.join(DATA, "postmaster.pid"),
            f"/tmp/.s.PGSQL.{PORT}",
            f"/tmp/.s.PGSQL.{PORT}.lock",
        ):
            if os.path.exists(f):
                os.unlink(f)  # a crash left them; process ids restart from 1 here
        self.write_conf(follow, standby)
        log(f"starting PostgreSQL as {'a standby of ' + str(follow) if standby else 'the primary'}")
        self.proc = subprocess.Popen([f"{BIN}/postgres", "-D", DATA])

    def kill(self):
        """Immediate shutdown: nothing more is acknowledged from here."""
        if self.running():
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def query(self, sql, host="/tmp", timeout=2):
        with psycopg.connect(
            host=host,
            port=PORT,
            user="postgres",
            password=PASSWORD,
            dbname="postgres",
            connect_timeout=timeout,
            autocommit=True,
        ) as c:
            return c.execute(sql).fetchone()

    def state(self, host="/tmp"):
        """(in recovery, WAL position: received on a standby, written on a primary)."""
        return self.query(
            "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN"
            " greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0'"
            " ELSE pg_current_wal_lsn() - '0/0' END",
            host=host,
            timeout=1,
        )

    def reload(self):
        self.query("SELECT pg_reload_conf()")

    def promote(self):
        self.write_conf(None, True)  # the promotion removes standby.signal
        self.query("SELECT pg_promote(false)")


PG = Postgres()


def superuser_dsn(node):
    return (
        f"host={PEERS[node]} port={PORT} user=postgres password={PASSWORD} "
        f"dbname=postgres connect_timeout=3"
    )


def mark_primary(on):
    if on:
        open(WAS_PRIMARY, "w").close()
    elif os.path.exists(WAS_PRIMARY):
        os.unlink(WAS_PRIMARY)


def rewind_from(node):
    """Make a former primary's data a copy that can follow ``node``: pg_rewind, else a
    base backup."""
    # single-user recovery refuses the signal files, and takes a stale pid file whose pid
    # is alive again for a running postmaster
    for f in ("standby.signal", "recovery.signal", "postmaster.pid"):
        if os.path.exists(os.path.join(DATA, f)):
            os.unlink(os.path.join(DATA, f))
    r = subprocess.run(
        [f"{BIN}/pg_rewind", "-D", DATA, f"--source-server={superuser_dsn(node)}"],
        check=False,
        capture_output=True,
        text=True,
    )
    if r.returncode == 0:
        log(f"pg_rewind from {node}: {r.stderr.strip()[-200:]}")
    else:
        log(f"pg_rewind from {node} failed ({r.stderr.strip()[-300:]}): a fresh base backup")
        base_backup(node)
    mark_primary(False)


def base_backup(node):
    tmp = DATA + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    subprocess.run(
        [
            f"{BIN}/pg_basebackup",
            "-h",
            PEERS[node],
            "-p",
            PORT,
            "-U",
            "replicator",
            "-D",
            tmp,
            "-X",
            "stream",
            "-c",
            "fast",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(DATA, ignore_errors=True)
    os.rename(tmp, DATA)
    os.chmod(DATA, 0o700)
    mark_primary(False)


def initdb():
    subprocess.run(
        [f"{BIN}/initdb", "-D", DATA, "-U", "postgres", "--auth-local=trust"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with open(os.path.join(DATA, "postgresql.conf"), "a") as f:
        f.write(f"""
listen_addresses = '*'
port = {PORT}
unix_socket_directories = '/tmp'
max_connections = 100
shared_buffers = 32MB
min_wal_size = 32MB
max_wal_size = 64MB
wal_keep_size = 64MB
wal_level = replica
wal_log_hints = on
hot_standby = on
max_wal_senders = 10
synchronous_commit = on
wal_sender_timeout = 5s
wal_receiver_timeout = 5s
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 500ms
include_if_exists = 'failover.conf'
""")
    with open(os.path.join(DATA, "pg_hba.conf"), "w") as f:
        f.write(
            "local all all trust\n"
            "host replication replicator samenet scram-sha-256\n"
            "host all all samenet scram-sha-256\n"
        )
    boot = subprocess.Popen(
        [
            f"{BIN}/postgres",
            "-D",
            DATA,
            "-c",
            "listen_addresses=",
            "-c",
            "synchronous_standby_names=",
        ]
    )
    for _ in range(100):
        try:
            PG.query("SELECT 1")
            break
        except psycopg.Error:
            time.sleep(0.1)
    with psycopg.connect(
        host="/tmp", port=PORT, user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
        c.execute(f"CREATE ROLE replicator LOGIN REPLICATION PASSWORD '{PASSWORD}'")
        c.execute(f"CREATE ROLE \"{USER}\" LOGIN PASSWORD '{PASSWORD}'")
        c.execute(f'CREATE DATABASE "{DB}" OWNER "{USER}"')
    boot.send_signal(signal.SIGINT)  # fast shutdown: a clean copy
    boot.wait()


# -- the loop ----------------------------------------------------------------------------


def others_state():
    """Each other host's (in recovery, LSN), or None when it does not answer."""
    out = {}
    for n in OTHERS:
        try:
            out[n] = PG.state(PEERS[n])
        except psycopg.Error:
            out[n] = None
    return out


def elect():
    """No leader: the standby with the most WAL takes the key, when every host but one
    answers and none of them is a primary."""
    if not PG.running():
        return False
    try:
        mine = PG.state()
    except psycopg.Error:
        return False
    seen = others_state()
    answering = {n: s for n, s in seen.items() if s is not None}
    if len(answering) < len(OTHERS) - 1 or not mine[0]:
        return False
    if any(not s[0] for s in answering.values()):
        return False  # a primary still runs: it fences itself or renews
    best = max(
        [(mine[1] or 0, ME)] + [(s[1] or 0, n) for n, s in answering.items()],
        key=lambda x: (x[0], -sorted(PEERS).index(x[1])),
    )
    if best[1] != ME:
        return False
    if not take_key():
        return False
    log(f"took the leader key (WAL at {mine[1]}; others {seen}); promoting")
    mark_primary(True)
    PG.promote()
    return True


def main():
    etcd_proc = start_etcd()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run()
    finally:
        PG.kill()
        etcd_proc.terminate()


def wait_for_etcd():
    while True:
        try:
            return leader()
        except EtcdDown:
            time.sleep(0.5)


def run():
    os.makedirs(DATA, mode=0o700, exist_ok=True)
    os.chmod(DATA, 0o700)
    current = wait_for_etcd()
    dirty = False  # the data may hold WAL the leader lacks: rewind before following
    if not os.path.exists(os.path.join(DATA, "PG_VERSION")):
        current = bootstrap()
    elif current == ME:
        PG.start(None, standby=False)  # the key is still ours: nobody else was promoted
    else:
        dirty = os.path.exists(WAS_PRIMARY)
    renewed = time.monotonic() if current == ME else None
    while True:
        time.sleep(LOOP)
        try:
            renewed, dirty = step(renewed, dirty)
        except Exception as exc:  # the controller must outlive any one error
            log(f"{type(exc).__name__}: {exc}")


def step(renewed, dirty):
    """One look at the cluster: (when the leader key was last renewed, or None when not
    the leader; whether the data needs a rewind)."""
    if renewed is not None:  # the primary: renew, or fence before the key can expire
        sent = time.monotonic()
        if sent - renewed <= TTL - 1:
            try:
                if renew_key(renewed + TTL - 1):
                    if not PG.running():
                        PG.start(None, standby=False)
                    return sent, dirty
                log("the leader key is someone else's: fencing")
            except EtcdDown:
                if time.monotonic() - renewed <= TTL - 1:
                    return renewed, dirty
                log("the leader key was not renewed in time: fencing")
        else:
            log("the leader key was not renewed in time: fencing")
        PG.kill()
        return None, True
    try:
        current = leader()
    except EtcdDown:
        return None, dirty
    if current is None:
        if not PG.running():  # a standby of nobody: its WAL counts in the election
            PG.start(None)
        try:
            if elect():
                return time.monotonic(), dirty
        except (EtcdDown, psycopg.Error) as exc:
            log(f"election: {exc}")
        return None, dirty
    if current == ME:  # ours, but not renewing (we fenced, or a promotion was cut)
        sent = time.monotonic()
        try:
            if renew_key(sent + 1):
                return sent, dirty
        except EtcdDown:
            pass
        return None, dirty
    return None, follow(current, dirty)


def bootstrap():
    """A host with no data: the first host makes the cluster, the others copy the leader."""
    if sorted(PEERS)[0] == ME and etcd("GET", INIT_KEY, {"quorum": "true"})[0] == 404:
        log("initdb: a new cluster")
        initdb()
        etcd("PUT", INIT_KEY, {"prevExist": "false"}, {"value": ME})
        while not take_key() and leader() != ME:
            time.sleep(LOOP)
        PG.start(None, standby=False)
        return ME
    while True:
        try:
            current = leader()
            if current and current != ME:
                base_backup(current)
                PG.start(current)
                return current
        except (EtcdDown, subprocess.CalledProcessError) as exc:
            log(f"waiting for a primary to copy: {exc}")
        time.sleep(1)


STUCK_S = 10.0  # a standby not streaming this long from a reachable leader rewinds
stuck_since = None


def follow(current, dirty):
    """Follow ``current``; whether the data still needs a rewind (``dirty``: it was a
    primary's)."""
    global stuck_since
    if PG.running() and not dirty:
        if PG.following != current:
            log(f"following {current}")
            PG.write_conf(current, True)
            PG.reload()
            stuck_since = None
            return False
        try:
            streaming = PG.query(
                "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"
            )[0]
        except psycopg.Error:
            return False
        now = time.monotonic()
        stuck_since = None if streaming else (stuck_since or now)
        if stuck_since is None or now - stuck_since < STUCK_S:
            return False
        try:
            PG.query("SELECT 1", host=PEERS[current], timeout=1)
        except psycopg.Error:
            return False  # the leader is away, not our data
        log(f"not streaming from {current} for {STUCK_S:g} s: a fresh copy")
        stuck_since = None
        PG.kill()
        try:
            base_backup(current)
        except (OSError, subprocess.CalledProcessError) as exc:
            log(f"could not copy from {current}: {exc}")
        PG.start(current)
        return False
    stuck_since = None
    PG.kill()
    if dirty:
        try:
            rewind_from(current)
        except (OSError, subprocess.CalledProcessError) as exc:
            log(f"could not copy from {current}: {exc}")
            return True
    PG.start(current)
    return False


if __name__ == "__main__":
    main()
