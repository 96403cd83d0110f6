"""The data-disk incidents: a runaway log (a process of the host appending to a log until
the disk is full or the fault heals) and a crash that leaves the data directory damaged.
Each acts as the host's user inside its view, and the timeline records what it did."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, assert_no_leftovers

from infragym import ConfigError
from infragym.history import Clock, History
from infragym.nemesis import Crash, DamagedData, FaultSpec, Nemesis, RunawayLog, build_fault
from infragym.sandbox import HOST_PYTHON, Cluster, Host

DISK = 4 << 20
SLEEPER = "import time\nwhile True: time.sleep(1)"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not ROOT:
        pytest.skip("needs root")
    with Cluster(2, data_size=DISK) as c:
        yield c
    assert_no_leftovers(c.run_id)


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def free(host: Host) -> int:
    st = os.statvfs(host.data_dir)
    return st.f_bavail * st.f_frsize


def sh(host: Host, command: str) -> str:
    r = host.run(["sh", "-c", command], timeout=20)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def play(cluster: Cluster, fault: Any, between: Callable[[], None]) -> History:
    """Apply ``fault`` through a nemesis, run ``between``, heal it: the history."""
    history = History()

    async def main() -> None:
        async with Nemesis(cluster, history, Clock(), check_capabilities=False) as nem:
            await nem.apply(fault)
            await asyncio.to_thread(between)
            await nem.heal(fault)

    asyncio.run(main())
    return history


# -- the runaway log ---------------------------------------------------------------------


def test_a_runaway_log_fills_the_disk_as_the_hosts_user_and_its_heal_says_how_much(
    cluster: Cluster,
) -> None:
    n1 = cluster.host("n1")
    fault = RunawayLog("n1", "rl", path="app/debug.log", rate_bps=16 << 20)
    log = n1.data_dir / "app" / "debug.log"

    def between() -> None:
        assert fault.process is not None
        wait_for("the disk filling", lambda: not fault.process.alive())  # type: ignore[union-attr]
        assert free(n1) == 0
        st = log.stat()
        assert (st.st_uid, st.st_gid) == (cluster.identity.uid, cluster.identity.gid)  # type: ignore[union-attr]
        assert free(cluster.host("n2")) > DISK // 2  # only n1's disk
        lines = log.read_text(errors="replace").splitlines()
        assert "DEBUG request trace seq=1 " in lines[0]

    history = play(cluster, fault, between)
    apply, heal = history.faults
    assert apply.detail["path"] == heal.detail["path"] == "/srv/data/app/debug.log"
    assert apply.detail["rate_bps"] == 16 << 20
    assert heal.detail["stopped"] == "disk-full"
    assert heal.detail["bytes_written"] == log.stat().st_size > DISK // 2
    assert 0 < heal.detail["full_after_s"] <= heal.detail["ran_s"]
    # the writer reported to the platform, not to the host's logs the operator reads
    assert not any("runaway" in p.name for p in n1.logs_dir.iterdir())


def test_a_held_log_keeps_its_space_when_deleted_until_the_writer_stops(
    cluster: Cluster,
) -> None:
    n1 = cluster.host("n1")
    fault = RunawayLog("n1", "rl", path="debug.log", rate_bps=16 << 20, persist=True)

    def between() -> None:
        wait_for("the disk filling", lambda: free(n1) == 0)
        sh(n1, "rm /srv/data/debug.log")
        time.sleep(0.5)
        assert fault.process is not None and fault.process.alive()
        assert free(n1) < DISK // 8  # deleted, but the writer still holds it

    history = play(cluster, fault, between)
    assert free(n1) > DISK // 2  # the heal stopped the writer: the space is back
    heal = history.faults[-1]
    assert heal.detail["stopped"] == "healed" and heal.detail["full_after_s"] is not None


def test_a_reopening_log_writes_again_into_the_space_a_deletion_frees(cluster: Cluster) -> None:
    n1 = cluster.host("n1")
    fault = RunawayLog("n1", "rl", path="debug.log", rate_bps=16 << 20, persist=True, reopen=True)

    def between() -> None:
        wait_for("the disk filling", lambda: free(n1) == 0)
        sh(n1, "rm /srv/data/debug.log")
        wait_for("the log coming back", (n1.data_dir / "debug.log").exists)
        wait_for("the disk filling again", lambda: free(n1) == 0)

    history = play(cluster, fault, between)
    heal = history.faults[-1]
    # more than the disk holds: only possible because the deletion freed the space
    assert heal.detail["bytes_written"] > DISK
    assert heal.detail["stopped"] == "healed"


def test_a_slow_log_healed_early_stops_and_a_crash_kills_one(cluster: Cluster) -> None:
    n1, n2 = cluster.host("n1"), cluster.host("n2")
    slow = RunawayLog("n1", "slow", path="d/x.log", rate_bps=64 << 10)
    log = n1.data_dir / "d" / "x.log"

    def between() -> None:
        wait_for("some lines", lambda: log.exists() and log.stat().st_size > 0)

    history = play(cluster, slow, between)
    heal = history.faults[-1].detail
    assert heal["stopped"] == "healed" and heal["full_after_s"] is None
    assert heal["bytes_written"] == log.stat().st_size < DISK
    size = log.stat().st_size
    time.sleep(0.3)
    assert log.stat().st_size == size and n1.pids() == []  # the writer is gone

    crashed = RunawayLog("n2", "crashed", path="y.log", rate_bps=64 << 10)
    ylog = n2.data_dir / "y.log"

    def crash() -> None:
        wait_for("some lines", lambda: ylog.exists() and ylog.stat().st_size > 0)
        assert Crash("n2", "c", restart=False).apply(cluster)["killed"] >= 1

    heal = play(cluster, crashed, crash).faults[-1].detail
    assert heal["stopped"] == "killed"
    assert 0 <= heal["bytes_written"] <= ylog.stat().st_size


HOOK = (
    "import os\n"
    "open('/srv/data/hooked', 'a').write('ran\\n')\n"
    "print('healed 1 0.001 -', flush=True)\n"
    "os._exit(0)\n"
)


def test_host_code_on_the_import_path_never_runs_in_the_platforms_processes(
    cluster: Cluster,
) -> None:
    """A user site under HOME=/tmp (usercustomize) and modules in /srv/data shadowing the
    standard library: the writer and the damager run isolated (python -I, the damager
    from /), so neither forges their records nor cancels the fault."""
    n1 = cluster.host("n1")
    user_site = sh(n1, "python3 -c 'import site; print(site.getusersitepackages())'").strip()
    assert user_site.startswith("/tmp/")
    for where in (f"{user_site}/usercustomize.py", "/srv/data/signal.py", "/srv/data/json.py"):
        n1.run(["sh", "-c", f"mkdir -p {os.path.dirname(where)} && cat > {where}"],
               input=HOOK.encode(), timeout=20)  # fmt: skip
    # the hooks work on an ordinary python of the host
    assert sh(n1, "cd /srv/data && python3 -c 'import signal'; cat hooked").endswith("ran\n")
    (n1.data_dir / "hooked").unlink()
    fault = RunawayLog("n1", "rl", path="debug.log", rate_bps=16 << 20)

    def between() -> None:
        wait_for("the disk filling", lambda: free(n1) == 0)

    heal = play(cluster, fault, between).faults[-1].detail
    assert heal["stopped"] == "disk-full" and heal["bytes_written"] > DISK // 2
    (n1.data_dir / "debug.log").unlink()
    sh(n1, "echo precious > /srv/data/db.dat")
    damage = DamagedData("n1", "dd", files=[{"path": "db.dat", "how": "delete"}], restart=False)
    apply = play(cluster, damage, lambda: None).faults[0].detail
    assert [d["path"] for d in apply["damaged"]] == ["/srv/data/db.dat"]
    assert not (n1.data_dir / "db.dat").exists()
    assert not (n1.data_dir / "hooked").exists()


def test_a_full_scratch_disk_does_not_keep_the_runaway_log_from_running(
    cluster: Cluster,
) -> None:
    """The writer reports to the platform's own small disk, not the host's /tmp."""
    n1 = cluster.host("n1")
    n1.run(["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=64k"], timeout=60)
    assert os.statvfs(n1.tmp_dir).f_bavail == 0
    fault = RunawayLog("n1", "rl", path="debug.log", rate_bps=16 << 20)

    def between() -> None:
        wait_for("the disk filling", lambda: free(n1) == 0)

    heal = play(cluster, fault, between).faults[-1].detail
    assert heal["stopped"] == "disk-full" and heal["bytes_written"] > DISK // 2


@pytest.mark.parametrize(
    ("setup", "path"),
    [
        ("mkdir -p /srv/data/log && ln -s /dev/null /srv/data/log/debug.log", "log/debug.log"),
        ("mkfifo /srv/data/debug.log", "debug.log"),
        ("ln -s /tmp /srv/data/elsewhere", "elsewhere/debug.log"),  # another disk
    ],
)
def test_a_runaway_log_never_writes_through_a_link_or_to_what_is_no_file(
    cluster: Cluster, setup: str, path: str
) -> None:
    """What the host put at the log's name stops the writer with a write error (the
    record says so) instead of swallowing its bytes elsewhere."""
    n1 = cluster.host("n1")
    sh(n1, setup)
    fault = RunawayLog("n1", "rl", path=path, rate_bps=16 << 20)

    def between() -> None:
        assert fault.process is not None
        wait_for("the writer stopping", lambda: not fault.process.alive())  # type: ignore[union-attr]

    heal = play(cluster, fault, between).faults[-1].detail
    assert heal["stopped"].startswith("error E"), heal
    assert heal["bytes_written"] == 0
    assert (
        free(n1) > DISK // 2
        and os.statvfs(n1.tmp_dir).f_bfree * 2 > os.statvfs(n1.tmp_dir).f_blocks
    )


def test_the_writers_report_lines_are_parsed_whatever_the_state() -> None:
    from infragym.nemesis._data_faults import parse_report

    assert parse_report("error ELOOP 0 0.004 -") == ("error ELOOP", 0, 0.004, None)
    assert parse_report("full 4190208 0.262 0.261") == ("full", 4190208, 0.262, 0.261)
    for bad in ("", "garbage", "started x 1 -", "a b c", " 1 2 -"):
        assert parse_report(bad) is None, bad


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"path": "../etc/passwd"}, "relative to the host's data directory"),
        ({"path": "/srv/data/x.log"}, "relative to the host's data directory"),
        ({"path": "a/./b.log"}, "relative to the host's data directory"),
        ({"path": "a b.log"}, "relative to the host's data directory"),
        ({"rate_bps": 10}, "rate_bps must be in"),
        ({"rate_bps": float("inf")}, "rate_bps must be a finite number"),
        ({"persist": "yes"}, "persist must be true or false"),
        ({"size": 3}, "unknown parameters ['size']"),
    ],
)
def test_bad_runaway_logs_are_refused(params: dict[str, Any], message: str) -> None:
    spec = FaultSpec("runaway-log", ("n1",), tuple(params.items()))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_fault(spec, "rl", ["n1", "n2"])


# -- the damaged data directory ----------------------------------------------------------

SEED_FILES = (
    "mkdir -p /srv/data/store && cd /srv/data/store && "
    "seq 1 1000 > records.log && "
    "head -c 4096 /dev/urandom > seg-1.dat && head -c 4096 /dev/urandom > seg-2.dat && "
    "echo bye > gone.txt && echo secret > /srv/etc/secret && "
    "ln -s /srv/etc/secret link.log && ln -s {outside} outside.log"
)

PLAN = [
    {"path": "store/records.log", "how": "truncate", "keep": 0.25},
    {"path": "store/seg-*.dat", "how": "corrupt", "bytes": 16, "at": 0.0},
    {"path": "store/gone.txt", "how": "delete"},
    {"path": "store/*.log", "how": "truncate", "keep": 0.0},
    {"path": "store/nothing-*", "how": "delete"},
]


@pytest.mark.parametrize("restart", [True, False])
def test_a_damaged_data_directory_after_a_crash(
    cluster: Cluster, tmp_path: Path, restart: bool
) -> None:
    n1 = cluster.host("n1")
    outside = tmp_path / "machine-file"
    outside.write_text("of the machine\n")
    sh(n1, SEED_FILES.format(outside=outside))
    store = n1.data_dir / "store"
    segs = {p.name: p.read_bytes() for p in sorted(store.glob("seg-*.dat"))}
    service = n1.spawn("store", [HOST_PYTHON, "-c", SLEEPER])
    bystander = cluster.host("n2").spawn("store", [HOST_PYTHON, "-c", SLEEPER])
    fault = build_fault(
        FaultSpec("damaged-data", ("n1",), (("files", PLAN), ("restart", restart))), "dd",
        cluster.names,
    )  # fmt: skip
    assert isinstance(fault, DamagedData)

    def between() -> None:
        assert not service.alive() and bystander.alive()

    history = play(cluster, fault, between)
    apply, heal = history.faults
    assert apply.fault == "damaged-data" and apply.detail["killed"] >= 1
    # records.log: first truncated to a quarter, then (store/*.log) to nothing
    assert (store / "records.log").read_bytes() == b""
    damaged = {(d["path"].rsplit("/", 1)[1], d["how"]) for d in apply.detail["damaged"]}
    assert damaged == {
        ("records.log", "truncate"), ("seg-1.dat", "corrupt"), ("seg-2.dat", "corrupt"),
        ("gone.txt", "delete"),
    }  # fmt: skip
    first = next(d for d in apply.detail["damaged"] if d["path"].endswith("records.log"))
    assert first["size"] == len("".join(f"{i}\n" for i in range(1, 1001)))
    assert first["kept"] == first["size"] // 4
    for name, before in segs.items():
        after = (store / name).read_bytes()
        assert len(after) == len(before) and after[16:] == before[16:]
        assert all(a != b for a, b in zip(after[:16], before[:16], strict=True))
    assert not (store / "gone.txt").exists()
    assert apply.detail["unmatched"] == ["store/nothing-*"]
    # links are never followed: not into the host's other directories, not out of it
    assert sorted(apply.detail["skipped"]) == ["store/link.log", "store/outside.log"]
    assert (n1.etc_dir / "secret").read_text() == "secret\n"
    assert outside.read_text() == "of the machine\n"
    assert heal.fault == "damaged-data"
    running = [p for p in n1.processes if p.name == "store" and p.alive()]
    assert len(running) == (1 if restart else 0)


def test_damage_walks_past_link_loops_and_follows_links_that_stay_inside(
    cluster: Cluster,
) -> None:
    """Two links to the directory itself (a walk that follows them never ends) and one
    to a file of the disk: the damage applies, links to directories are not walked, a
    link to a regular file of the disk damages that file."""
    n1 = cluster.host("n1")
    sh(n1, "mkdir -p /srv/data/store && seq 1 100 > /srv/data/store/r.log && "
           "seq 1 100 > /srv/data/store/s.log && cd /srv/data && ln -s . a && ln -s . b && "
           "ln -s store/s.log current")  # fmt: skip
    plan = [{"path": "**/*.log", "how": "truncate", "keep": 0.0},
            {"path": "current", "how": "corrupt", "bytes": 4, "at": 0.0}]  # fmt: skip
    fault = DamagedData("n1", "dd", files=plan, restart=False)
    apply = play(cluster, fault, lambda: None).faults[0].detail
    assert apply["truncated"] is False and "error" not in apply
    assert (n1.data_dir / "store" / "r.log").read_bytes() == b""
    damaged = {d["path"]: d for d in apply["damaged"]}
    assert set(damaged) == {"/srv/data/store/r.log", "/srv/data/store/s.log", "/srv/data/current"}
    assert damaged["/srv/data/current"]["target"] == "/srv/data/store/s.log"


def test_a_damage_cut_short_or_failed_is_the_faults_outcome(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infragym.nemesis import _data_faults

    n1 = cluster.host("n1")
    sh(n1, "mkdir -p /srv/data/many && cd /srv/data/many && seq 1 300 | xargs touch && "
           "echo x > /srv/data/locked && chmod 0 /srv/data/locked")  # fmt: skip
    monkeypatch.setattr(_data_faults, "MAX_WALK", 50)
    plan = [{"path": "locked", "how": "truncate"}, {"path": "many/*", "how": "delete"}]
    apply = play(cluster, DamagedData("n1", "dd", files=plan, restart=False), lambda: None)
    detail = apply.faults[0].detail
    assert detail["truncated"] is True
    assert [f["path"] for f in detail["failed"]] == ["/srv/data/locked"]
    assert 0 < len(detail["damaged"]) < 50
    assert len(os.listdir(n1.data_dir / "many")) == 300 - len(detail["damaged"])
    monkeypatch.setattr(_data_faults, "DAMAGER", "import sys; sys.exit('broken')")
    apply = play(cluster, DamagedData("n1", "dd2", files=plan, restart=False), lambda: None)
    detail = apply.faults[0].detail
    assert detail["damaged"] == [] and "broken" in detail["error"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ((), "files must be a list of 1-32 tables"),
        ("store/x", "files must be a list of 1-32 tables"),
        ([{"path": "x"}], "how must be one of truncate, corrupt, delete"),
        ([{"path": "x", "how": "shred"}], "how must be one of truncate, corrupt, delete"),
        ([{"path": "x", "how": "truncate", "keep": 1}], r"keep must be a number in \[0, 0.999\]"),
        ([{"path": "x", "how": "corrupt", "bytes": 0}], "bytes must be a whole number in"),
        ([{"path": "x", "how": "corrupt", "bytes": 2.5}], "bytes must be a whole number in"),
        ([{"path": "x", "how": "delete", "keep": 0.5}], "keep does not apply to how = 'delete'"),
        ([{"path": "x", "how": "delete", "mode": 1}], r"unknown keys \['mode'\]"),
        ([{"path": "../x", "how": "delete"}], "relative to the host's data directory"),
        (["x"], r"files\[0\] must be a table"),
    ],
)
def test_bad_damage_plans_are_refused(files: object, message: str) -> None:
    spec = FaultSpec("damaged-data", ("n1",), (("files", files),))
    with pytest.raises(ConfigError, match=message):
        build_fault(spec, "dd", ["n1"])
