"""What the agent's sandbox keeps out of reach, each tried for real through the bash tool.

Every test attacks from inside an episode's workstation the way an agent would, then
checks from outside that the attack failed and that the platform carried on.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_no_leftovers, needs_root, start_http
from episodes import bash, run_ids
from tinytask import DEPLOYED_GRADER, tiny_task

from infragym.env import SyncEnv, ToolCall, make
from infragym.grading import grade_workspace
from infragym.sandbox import Cluster, Limits, _state
from infragym.sandbox._identity import ID_BASE, ID_COUNT, USER_NAME
from infragym.sandbox._workstation import Workstation
from infragym.tasks import find_task, load_task

pytestmark = [needs_root, pytest.mark.usefixtures("no_runs_left")]



@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    return tiny_task(tmp_path / "tasks")


@pytest.fixture
def env(task_dir: Path, tmp_path: Path) -> Iterator[SyncEnv]:
    e = SyncEnv(make(str(task_dir), artifacts_dir=tmp_path / "artifacts"))
    e.reset(seed=1)
    ids = run_ids(e)
    try:
        yield e
    finally:
        e.close()
    for run_id in ids:
        assert_no_leftovers(run_id)


def sh(env: SyncEnv, command: str, timeout: float | None = None) -> str:
    return env.step(bash(command, timeout)).observation.content


def processes(*cmdlines: str) -> list[int]:
    """Pids of the machine's processes whose command line is one of ``cmdlines``."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
            except OSError:
                continue
            if cmd.decode(errors="replace") in cmdlines:
                out.append(int(pid))
    return out


def test_the_agent_is_its_runs_user_without_capabilities_alone_in_its_pid_namespace(
    env: SyncEnv,
) -> None:
    out = sh(
        env,
        "id -u; id -G; hostname; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs)' "
        "/proc/self/status; ps -e -o pid= | wc -l; ls /",
    )
    lines = out.splitlines()
    # the dev hosts' identity: they serve the live workspace, so they read what it keeps
    dev = env.env.dev_cluster
    assert dev is not None and dev.identity is not None
    uid = str(dev.identity.uid)
    assert lines[:3] == [uid, uid, "workstation"], out
    assert ID_BASE <= dev.identity.uid < ID_BASE + ID_COUNT, out
    host = env.step(ToolCall("host_bash", {"host": "n1", "command": "id -u; id -un"}))
    assert host.observation.content.split()[:2] == [uid, USER_NAME], host.observation.content
    assert all(line.split()[1] in ("0000000000000000", "1") for line in lines[3:9]), out
    assert int(lines[9]) <= 4, f"the sandbox sees processes beyond its own: {out}"
    assert lines[10:-1] == [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib64",
        "proc",
        "run",
        "sbin",
        "tmp",
        "usr",
        "workspace",
    ], out


def test_the_grader_solutions_the_repository_and_other_runs_are_out_of_sight(
    env: SyncEnv, task_dir: Path, tmp_path: Path
) -> None:
    # a task folder under a tree the sandbox does see (as when installed system-wide)
    share = Path(tempfile.mkdtemp(prefix="infragym-test-", dir="/usr/local/share"))
    share.chmod(0o755)  # world-readable, as an installed package is: only hiding protects it
    other = Workstation().start()
    try:
        visible_task = tiny_task(share)
        (other.workspace / "secret").write_text("other episode")
        with SyncEnv(make(str(visible_task), artifacts_dir=tmp_path / "b")) as env2:
            env2.reset(seed=1)
            probe = (
                f"ls -A {visible_task}; cat {visible_task}/grader.py; "
                f"ls {visible_task}/solutions/robust; ls -d {share}; cat /work/main/README.md"
            )
            out2 = sh(env2, probe)
            # the dev hosts the agent drives run its commands with the same view
            r = env2.step(ToolCall("host_bash", {"host": "n1", "command": probe}))
            out3 = r.observation.content
        out = sh(
            env,
            f"cat {task_dir}/grader.py; ls {task_dir}/solutions/robust; "
            f"cat {task_dir}/solutions/robust/answer.txt; "
            "cat /work/main/README.md; ls /work /root /home /var /srv /opt; "
            f"ls {_state.DATA_ROOT} {_state.STATE_DIR}; ls -A /run /sys/fs/cgroup; "
            f"cat {other.workspace}/secret; ls {other.root}",
        )
    finally:
        other.close()
        subprocess.run(["rm", "-rf", str(share)], check=True)
    assert "async def grade" not in out and "42" not in out.splitlines(), out
    assert out.count("No such file or directory") >= 12, out
    assert "other episode" not in out and "[exit code 2]" in out
    for o in (out2, out3):
        assert "async def grade" not in o and "answer.txt" not in o, o
        assert "senior" not in o and "Permission denied" not in o, o  # not there at all
        assert str(share) in o  # the folder exists in the view, as an empty mount


@pytest.fixture
def usr_share() -> Iterator[Path]:
    """A world-readable folder under a tree every sandbox sees, as an installed package is."""
    share = Path(tempfile.mkdtemp(prefix="infragym-test-", dir="/usr/local/share"))
    share.chmod(0o755)
    try:
        yield share
    finally:
        subprocess.run(["rm", "-rf", str(share)], check=True)


def test_an_installed_third_party_task_is_hidden_from_another_tasks_agent(
    task_dir: Path, tmp_path: Path, usr_share: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a real installed distribution (a dist-info on sys.path) registering a task folder
    # through the infragym.tasks entry point group, installed where the sandbox sees /usr
    module = f"acme_tasks_{secrets.token_hex(4)}"
    (usr_share / module).mkdir()
    acme = tiny_task(usr_share / module, name="acme-task")
    (usr_share / module / "__init__.py").write_text(
        "from pathlib import Path\nTASK_DIR = Path(__file__).parent / 'acme-task'\n")
    dist = usr_share / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[infragym.tasks]\nacme-task = {module}\n")
    monkeypatch.syspath_prepend(str(usr_share))
    monkeypatch.delitem(sys.modules, module, raising=False)  # removed again afterwards
    assert find_task("acme-task").path == acme
    probe = f"cat {acme}/grader.py; ls {acme}/solutions/robust"
    with SyncEnv(make(str(task_dir), artifacts_dir=tmp_path / "a")) as e:
        e.reset(seed=1)  # another task's episode, started after the package was installed
        outs = [
            sh(e, probe),
            e.step(ToolCall("host_bash", {"host": "n1", "command": probe})).observation.content,
        ]
    for o in outs:
        assert "async def grade" not in o and "answer.txt" not in o, o
        assert "No such file or directory" in o, o


def test_a_task_loaded_by_path_is_hidden_from_its_grading_cluster(
    usr_share: Path, tmp_path: Path
) -> None:
    grader = DEPLOYED_GRADER.replace(
        'cat /srv/app/answer.txt 2>/dev/null"',
        f'cat /srv/app/answer.txt {usr_share}/tt/grader.py 2>&1"',
    ).replace('notes=[f"seed {ctx.seed}"]', "notes=[r.stdout.decode()]")
    task = load_task(tiny_task(usr_share, name="tt", grader=grader))
    res = asyncio.run(grade_workspace(task, task.solution("robust"), 1, tmp_path / "art"))
    assert res.error is None, res.error
    assert "No such file or directory" in res.notes[0], res.notes
    assert "async def grade" not in res.notes[0], res.notes


def test_the_agent_cannot_write_outside_its_workspace(env: SyncEnv) -> None:
    token = secrets.token_hex(4)
    targets = [
        f"/etc/ig-{token}",
        f"/usr/ig-{token}",
        f"/ig-{token}",
        f"/root/ig-{token}",
        f"{_state.DATA_ROOT}/ig-{token}",
        f"/proc/ig-{token}",
        f"/dev/ig-{token}",
    ]
    script = "; ".join(f"touch {t} 2>/dev/null && echo WROTE {t}" for t in targets)
    out = sh(
        env,
        f"{script}; echo x > /tmp/ig-{token} && echo SCRATCH; "
        f"mount -t tmpfs x /workspace 2>&1; chmod 777 /etc 2>&1; echo ok > /workspace/w",
    )
    assert "WROTE" not in out and "SCRATCH" in out, out
    assert "must be superuser" in out or "Operation not permitted" in out or "denied" in out, out
    for t in targets:
        assert not Path(t).exists()
    assert not Path(f"/tmp/ig-{token}").exists()  # the sandbox's /tmp is its own scratch
    ws = env.env.workstation
    assert ws is not None and (ws.tmp / f"ig-{token}").exists()
    assert (ws.workspace / "w").read_text() == "ok\n"


def test_the_network_reaches_the_dev_hosts_and_nothing_else(env: SyncEnv) -> None:
    server = socket.socket()
    server.bind(("0.0.0.0", 0))  # the machine's loopback and its own addresses
    server.listen()
    port = server.getsockname()[1]
    primary = subprocess.run(
        ["ip", "-4", "-o", "route", "get", "198.18.255.1"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    src = primary.split("src ")[1].split()[0] if "src " in primary else "127.0.0.1"
    probe = (
        "import socket,sys\nfor a in sys.argv[2:]:\n"
        " s=socket.socket(); s.settimeout(2)\n"
        " try: s.connect((a,int(sys.argv[1]))); print('CONNECTED',a)\n"
        " except OSError as e: print('FAILED',a,e.errno)\n"
    )
    try:
        with Cluster(1) as other:
            other_addr = other.hosts[0].address
            start_http(other.hosts[0])
            assert other.hosts[0].can_connect(other.hosts[0].address, 8080)
            env.step(ToolCall("write_file", {"path": "probe.py", "content": probe}))
            env.step(
                ToolCall(
                    "host_bash",
                    {"host": "n1", "background": True, "command": "python3 -m http.server 8080"},
                )
            )
            out = sh(
                env,
                "for i in $(seq 100); do curl -s -o /dev/null http://n1:8080/ && break; "
                f"sleep 0.05; done; python3 probe.py {port} 127.0.0.1 {src}; "
                f"python3 probe.py 8080 {other_addr} n1; "
                "ip -4 route; ip route get 1.1.1.1 2>&1",
            )
    finally:
        server.close()
    assert "FAILED 127.0.0.1 111" in out, out  # its own loopback: nothing listens there
    assert f"FAILED {src} 101" in out or src == "127.0.0.1", out  # ENETUNREACH: no route
    assert f"FAILED {other_addr} 101" in out, out
    assert "CONNECTED n1" in out, out
    routes = [r for r in out.splitlines() if "proto kernel" in r or r.startswith("default")]
    assert len(routes) == 1 and "scope link" in routes[0], out
    assert "unreachable" in out


def test_host_processes_are_out_of_sight_and_reach(env: SyncEnv) -> None:
    victim = subprocess.Popen(["sleep", "3600.25"])
    try:
        out = sh(
            env,
            f"kill -0 {victim.pid} 2>&1; kill -9 {victim.pid} 2>&1; kill -9 1 2>&1; "
            f"ps -eo args | grep -c 3600.25; cat /proc/{victim.pid}/cmdline 2>&1; "
            "kill -0 1 && echo init-lives",
        )
        time.sleep(0.2)
        assert victim.poll() is None, "the agent killed a process of the machine"
    finally:
        victim.kill()
        victim.wait()
    # pid 1 (the sandbox's init, the agent's own user) ignores what the agent sends it
    assert "No such process" in out and "init-lives" in out, out
    assert "3600.25" not in out.replace("grep -c 3600.25", ""), out


def test_nothing_the_agent_started_survives_submit(env: SyncEnv) -> None:
    out = sh(env, "setsid nohup sleep 1000.3 >/dev/null 2>&1 & disown; echo started")
    assert "started" in out
    env.step(ToolCall("host_bash", {"host": "n1", "command": "sleep 1000.4", "background": True}))
    env.step(
        ToolCall(
            "host_bash",
            {
                "host": "n1",
                "command": "sleep 1000.5 & setsid sleep 1000.6 & sleep 1000.7",
                "background": True,
            },
        )
    )
    time.sleep(0.3)
    names = ("sleep 1000.3", "sleep 1000.4", "sleep 1000.5", "sleep 1000.6", "sleep 1000.7")
    # the workstation's own PID namespace ended its orphan already; the dev host's live on
    assert not processes(names[0])
    assert len(processes(*names[1:])) == 4
    r = env.step(ToolCall("submit"))
    assert r.terminated
    assert processes(*names) == []


def test_a_fork_bomb_is_contained_and_the_episode_goes_on(env: SyncEnv) -> None:
    ws = env.env.workstation
    assert ws is not None
    r = env.step(bash("for i in $(seq 10000); do sleep 100.7 & done; wait", timeout=6))
    assert "Resource temporarily unavailable" in r.observation.content, r.observation.content
    events = (ws.cgroup.dirs["pids"] / "pids.events").read_text()
    assert int(events.split()[1]) > 0, events  # the limit was hit
    assert processes("sleep 100.7") == []
    assert sh(env, "echo alive") == "alive\n[exit code 0]"


def test_a_memory_hog_is_contained_and_the_episode_goes_on(env: SyncEnv) -> None:
    ws = env.env.workstation
    assert ws is not None
    out = sh(env, "python3 -c \"b = b'x' * (4 << 30); print('ALLOCATED')\"; echo rc=$?")
    assert "ALLOCATED" not in out.splitlines() and ("rc=137" in out or "MemoryError" in out), out
    oom = (ws.cgroup.dirs["memory"] / "memory.oom_control").read_text().split()
    assert int(oom[oom.index("oom_kill") + 1]) >= 1, oom  # the cgroup's OOM killer acted
    assert sh(env, "echo alive") == "alive\n[exit code 0]"


def test_a_command_past_its_timeout_dies_with_all_its_children(env: SyncEnv) -> None:
    ws = env.env.workstation
    assert ws is not None
    seen: list[int] = []

    async def main() -> str:
        async def watch() -> None:
            await asyncio.sleep(0.8)
            seen.extend(ws.pids())

        cmd = "sleep 500.1 & setsid sleep 500.2 & (sleep 500.3 &); echo started; sleep 500.4"
        step, _ = await asyncio.gather(env.env.step(bash(cmd, timeout=2)), watch())
        return step.observation.content

    t = time.monotonic()
    out = env._runner.run(main())
    assert time.monotonic() - t < 6
    assert out.startswith("started\n") and "timed out after 2 s" in out, out
    assert len(seen) >= 6, seen  # bwrap, its init, bash and four sleeps
    left = {
        p: Path(f"/proc/{p}/status").read_text()[:300] for p in seen if os.path.exists(f"/proc/{p}")
    }
    assert left == {}, (seen, left)
    assert processes(*(f"sleep 500.{i}" for i in range(1, 5))) == []
    assert sh(env, "echo next") == "next\n[exit code 0]"


def test_the_platform_environment_and_descriptors_do_not_leak(
    task_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFRAGYM_TEST_SECRET", "s3cret-token")
    with open(os.devnull) as leaked, SyncEnv(make(str(task_dir), artifacts_dir=tmp_path)) as e:
        assert leaked.fileno() > 2
        e.reset(seed=1)
        out = sh(e, "env; ls /proc/self/fd")
    assert "s3cret-token" not in out and "INFRAGYM_DEV_HOSTS=n1" in out
    assert out.split("\n")[-4:-1] == ["1", "2", "3"], out  # 0-2 and ls's own directory


def test_cpu_is_limited(task_dir: Path, tmp_path: Path) -> None:
    limits = Limits(pids=64, memory_bytes=256 << 20, cpu=0.2)
    with SyncEnv(make(str(task_dir), artifacts_dir=tmp_path, sandbox_limits=limits)) as e:
        e.reset(seed=1)
        ws = e.env.workstation
        assert ws is not None
        t = time.monotonic()
        out = sh(e, "timeout 1 sh -c 'while :; do :; done'; echo done")
        assert "done" in out and time.monotonic() - t < 5
        stat = dict(
            line.split() for line in (ws.cgroup.dirs["cpu"] / "cpu.stat").read_text().splitlines()
        )
    assert int(stat["nr_throttled"]) > 0, stat


def test_namespaces_and_cgroups_cannot_be_escaped(env: SyncEnv) -> None:
    out = sh(
        env,
        "nsenter --net=/proc/1/ns/net true 2>&1 || echo NSENTER-DENIED; "
        "unshare -n true 2>&1 || echo UNSHARE-DENIED; "
        "echo $$ > /sys/fs/cgroup/pids/cgroup.procs 2>&1 || echo CGROUP-DENIED; "
        "unshare -U -r -n ip -o link 2>&1 || echo USERNS-DENIED",
    )
    for marker in ("NSENTER-DENIED", "UNSHARE-DENIED", "CGROUP-DENIED", "USERNS-DENIED"):
        assert marker in out, out
    assert "eth0" not in out, out


KEYRING_PLANT = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
kid = libc.syscall(248, b"user", b"infragym-channel", b"the answer is 42", 16, -4)
print("add_key", kid, ctypes.get_errno())
"""

KEYRING_READ = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
kid = libc.syscall(249, b"user", b"infragym-channel", None, 0)  # request_key
print("request_key", kid, ctypes.get_errno())
buf = ctypes.create_string_buffer(64)
n = libc.syscall(250, 11, kid, buf, 64) if kid > 0 else -1  # KEYCTL_READ
print("read", buf.raw[:max(n, 0)])
"""


def test_no_keyring_carries_anything_from_one_episode_to_another(
        env: SyncEnv, task_dir: Path, tmp_path: Path) -> None:
    """Every sandbox runs as nobody and the kernel's keyrings are per user, not per
    namespace: without the filter one episode planted a key that the next one read."""
    env.step(ToolCall("write_file", {"path": "plant.py", "content": KEYRING_PLANT}))
    assert "add_key -1 1" in sh(env, "python3 plant.py")  # EPERM
    with SyncEnv(make(str(task_dir), artifacts_dir=tmp_path / "other")) as other:
        other.reset(seed=2)
        other.step(ToolCall("write_file", {"path": "read.py", "content": KEYRING_READ}))
        out = sh(other, "python3 read.py")
    assert "request_key -1 1" in out and "42" not in out, out


USERNS_PROBE = r"""
import ctypes, os, threading
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
for name, flags in [("unshare-user", CLONE_NEWUSER), ("unshare-user-net",
                    CLONE_NEWUSER | CLONE_NEWNET)]:
    rc = libc.unshare(flags)
    print(name, rc, os.strerror(ctypes.get_errno()))
rc = libc.syscall(56, CLONE_NEWUSER | 17, 0, 0, 0, 0)  # raw clone(2) on x86_64, SIGCHLD
if rc == 0:
    os._exit(0)
print("clone-user", rc, os.strerror(ctypes.get_errno()))
rc = libc.syscall(435, 0, 0)  # clone3: its flags are out of a filter's reach
print("clone3", rc, os.strerror(ctypes.get_errno()))
params = ctypes.create_string_buffer(120)
rc = libc.syscall(425, 4, params)  # io_uring_setup
print("io_uring", rc, os.strerror(ctypes.get_errno()))
t = threading.Thread(target=print, args=("thread ok",)); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork ok", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_no_user_namespace_can_be_made_and_threads_and_forks_still_work(env: SyncEnv) -> None:
    """A user namespace would hand the agent every capability over namespaces it makes:
    the kernel's namespace-only attack surface (nf_tables and friends)."""
    env.step(ToolCall("write_file", {"path": "probe.py", "content": USERNS_PROBE}))
    out = sh(env, "python3 probe.py 2>&1; unshare -U true 2>&1; echo rc=$?")
    assert "unshare-user -1 Operation not permitted" in out, out
    assert "unshare-user-net -1 Operation not permitted" in out, out
    assert "clone-user -1 Operation not permitted" in out, out
    assert "clone3 -1 Function not implemented" in out, out
    assert "io_uring -1 Function not implemented" in out, out
    assert "thread ok" in out and "fork ok 7" in out, out
    assert "rc=1" in out, out


def test_pid_1_and_the_mount_table_show_nothing_of_the_platform(env: SyncEnv) -> None:
    """What a sandboxed process reads of its pid 1 (command line, environment,
    descriptors) and of its mounts names no path of the machine, no run id and no
    platform tool: not in the agent's bash tool, not in a process on a dev host."""
    probe = (
        "echo CMDLINE; tr '\\0' ' ' </proc/1/cmdline; echo; echo ENVIRON; "
        "tr '\\0' '\\n' </proc/1/environ | grep -v '^INFRAGYM_'; echo FDS; "
        "for f in /proc/1/fd/*; do [ ${f##*/} -gt 2 ] && readlink $f; done; "
        "echo MOUNTS; cat /proc/self/mountinfo"
    )
    outs = {
        "bash": sh(env, probe),
        "host_bash": env.step(ToolCall("host_bash", {"host": "n1", "command": probe}))
        .observation.content,
    }
    ids = run_ids(env)
    assert len(ids) == 2, ids
    banned = [*ids, "/work/", str(_state.DATA_ROOT), str(_state.STATE_DIR), "infragym",
              "bwrap", "setpriv", "--seccomp", "--bind", "/var/lib", "memfd"]  # fmt: skip
    for tool, out in outs.items():
        assert "CMDLINE" in out and "MOUNTS" in out and "/etc/hosts" in out, (tool, out)
        assert "[exit code 0]" in out, (tool, out)
        seen = [b for b in banned if b.lower() in out.lower()]
        assert not seen, f"{tool} sees {seen} in:\n{out}"
        # beyond stdio, pid 1 holds only its own script open: nothing of the launch
        fds = out.split("FDS\n", 1)[1].split("MOUNTS", 1)[0].split()
        assert set(fds) <= {"/run/init"}, (tool, out)
