"""A hostile system under test must not break teardown, leak, or starve the machine.

The agent's code runs on dev hosts, on grading hosts and in its workspace; whatever it
leaves there (a tree too deep to recurse into, hundreds of thousands of log files,
sockets full of unread data, setuid files) must give a normal result, a bounded
teardown and nothing left behind. Before the fix a 1,200-level tree gave a RecursionError:
no reward, and a leaked cluster.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_no_leftovers, needs_root
from episodes import bash, run_ids
from tinytask import STARTING_GRADER, tiny_task

from infragym.env import SyncEnv, ToolCall, make
from infragym.grading._pipeline import copy_workspace
from infragym.sandbox import HOST_PYTHON, Cluster, Limits
from infragym.sandbox._sys import MAX_INODES

pytestmark = [needs_root, pytest.mark.usefixtures("no_runs_left")]

DEPTH = 1200  # past Python's recursion limit
DEEP_TREE = f"python3 -c \"import os; [(os.mkdir('d'), os.chdir('d')) for _ in range({DEPTH})]\""



@contextlib.contextmanager
def episode(tmp_path: Path, grader: str | None = None) -> Iterator[SyncEnv]:
    kw = {} if grader is None else {"grader": grader}
    e = SyncEnv(make(str(tiny_task(tmp_path / "tasks", **kw)), artifacts_dir=tmp_path / "a"))
    e.reset(seed=1)
    ids = run_ids(e)
    try:
        yield e
    finally:
        e.close()
    for run_id in ids:
        assert_no_leftovers(run_id)


def ok(result_text: str) -> None:
    assert "[exit code" not in result_text or "[exit code 0]" in result_text, result_text


def test_a_deep_tree_in_a_grading_hosts_logs_grades_normally_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    start = f"cd /srv/logs && {DEEP_TREE}\n"
    with episode(tmp_path, STARTING_GRADER) as env:
        env.step(ToolCall("write_file", {"path": "answer.txt", "content": "42\n"}))
        env.step(ToolCall("write_file", {"path": "start.sh", "content": start}))
        r = env.step(ToolCall("submit"))
    grade = r.info["grade"]
    assert r.reward == 1.0 and grade.error is None, grade
    cluster = grade.notes[-1].split()[-1]
    assert_no_leftovers(cluster)
    note = Path(grade.artifacts_dir or "") / "hosts" / "n1" / "logs-left-out.txt"
    assert "deeper than" in note.read_text()


def test_a_deep_tree_on_a_dev_host_leaves_a_normal_episode(tmp_path: Path) -> None:
    with episode(tmp_path) as env:
        out = env.step(ToolCall("host_bash", {"host": "n1", "command": f"cd /srv/logs && "
                                              f"{DEEP_TREE} && echo made"}))
        assert "made" in out.observation.content, out.observation.content
        env.step(ToolCall("write_file", {"path": "answer.txt", "content": "42\n"}))
        r = env.step(ToolCall("submit"))
    assert r.reward == 1.0 and r.info["grade"].error is None


def test_a_deep_tree_in_the_workspace_scores_0_and_leaks_nothing(tmp_path: Path) -> None:
    with episode(tmp_path) as env:
        ok(env.step(bash(f"echo 42 > answer.txt && {DEEP_TREE}")).observation.content)
        r = env.step(ToolCall("submit"))
    grade = r.info["grade"]
    assert r.reward == 0.0 and grade.error is None, grade
    assert "deeper than 64 levels" in " ".join(grade.notes), grade.notes


def test_many_log_files_give_bounded_artifacts_and_a_quick_teardown(tmp_path: Path) -> None:
    """30,000 small logs and 40 MiB of big ones: the artifacts keep at most 1,000 names
    and 16 MiB per host, and say what they left out. (Before, every file was copied:
    300,000 logs made a 52 s teardown; a host's disks held any number of names.)"""
    art = tmp_path / "artifacts"
    fill = (
        "import os\n"
        "os.makedirs('/srv/logs/many')\n"
        "for i in range(30000):\n"
        "    open(f'/srv/logs/many/{i}.log', 'w').close()\n"
        "for i in range(5):\n"
        "    with open(f'/srv/logs/big{i}.log', 'wb') as f: f.write(os.urandom(8 << 20))\n"
    )
    c = Cluster(1, artifacts_dir=art).start()
    try:
        h = c.hosts[0]
        # a host's disks hold a bounded number of names: unmounting frees each of them
        assert 0 < os.statvfs(h.logs_dir).f_files <= MAX_INODES
        assert 0 < os.statvfs(h.data_dir).f_files <= MAX_INODES
        r = h.run([HOST_PYTHON, "-c", fill], timeout=120)
        assert r.returncode == 0, r.stderr
    finally:
        t0 = time.monotonic()
        c.close()
        took = time.monotonic() - t0
    assert_no_leftovers(c.run_id)
    logs = art / "hosts" / "n1" / "logs"
    files = [p for p in logs.rglob("*")]
    assert 0 < len(files) <= 1000
    assert sum(p.stat().st_size for p in files if p.is_file()) <= 16 << 20
    note = (art / "hosts" / "n1" / "logs-left-out.txt").read_text()
    assert "1,000 names" in note or "16,777,216 bytes" in note, note
    assert took < 30, f"teardown took {took:.1f} s"


def test_sockets_full_of_unread_data_are_charged_to_the_host_and_bounded() -> None:
    """40 loopback connections of unread data pinned ~150 MiB of the machine's TCP
    memory, charged to no cgroup. Now the host's cgroup carries it, up to its limit."""
    hog = (
        "import socket\n"
        "ls = socket.socket(); ls.bind(('127.0.0.1', 0)); ls.listen(40)\n"
        "pairs, total = [], 0\n"
        "for _ in range(40):\n"
        "    c = socket.create_connection(ls.getsockname()); s, _ = ls.accept()\n"
        "    c.setblocking(False); pairs.append((c, s))\n"
        "for c, _ in pairs:\n"
        "    for _ in range(400):\n"  # at most 25 MiB a connection
        "        try:\n"
        "            total += c.send(b'x' * 65536)\n"
        "        except BlockingIOError:\n"
        "            break\n"
        "print(total)\n"
    )
    limit = 16 << 20
    with Cluster(1, limits=Limits(tcp_memory_bytes=limit)) as c:
        h = c.hosts[0]
        r = h.run([HOST_PYTHON, "-c", hog], timeout=60)
        assert r.returncode == 0, r.stderr
        buffered = int(r.stdout)
        tcp = h.cgroup.dirs["memory"]
        peak = int((tcp / "memory.kmem.tcp.max_usage_in_bytes").read_text())
        assert int((tcp / "memory.kmem.tcp.limit_in_bytes").read_text()) == limit
    assert peak > limit // 2, "the host's sockets are not charged to its cgroup"
    assert buffered < 2 * limit, f"{buffered:,} bytes buffered past a {limit:,} byte limit"
    assert Limits().tcp_memory_bytes == 64 << 20


def test_setuid_and_setgid_bits_do_not_survive_the_grading_copy(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "sgid").mkdir(parents=True)
    (ws / "sgid").chmod(0o2775)
    for name, mode in (("suid", 0o4755), ("sgid/both", 0o6711), ("plain", 0o640)):
        (ws / name).write_text("#!/bin/sh\n")
        (ws / name).chmod(mode)
    (ws / "link").symlink_to("suid")
    copy_workspace(ws, tmp_path / "copy")
    modes = {p.name: stat.S_IMODE(os.lstat(p).st_mode) for p in (tmp_path / "copy").rglob("*")}
    assert modes["suid"] == 0o755 and modes["both"] == 0o711 and modes["plain"] == 0o640
    assert modes["sgid"] == 0o775
    assert (tmp_path / "copy" / "link").is_symlink()


def test_a_deep_tree_at_a_logs_name_is_removed_when_the_service_starts() -> None:
    with Cluster(1) as c:
        h = c.hosts[0]
        plant = f"mkdir /srv/logs/svc.log && cd /srv/logs/svc.log && {DEEP_TREE}"
        assert h.run(["sh", "-c", plant]).returncode == 0
        p = h.spawn("svc", ["echo", "hello"], service=False)
        p.wait(5)
        assert p.output().strip() == "hello"
    assert_no_leftovers(c.run_id)
