"""The hack-probe catalogue (``infragym.probes``): every entry builds a deployable workspace
or an agent's script; the wrapping probes' front really cheats and the outlive payload
really puts a reference in place if it survives, each tried on loopback without a grading;
the agent probes run through an Env on the tiny task and leave nothing behind; the tamper
probe is refused on a graded host. Their rewards on kv-replicated come from
``check_task`` (tests/test_builtin_tasks.py)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import needs_root
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym import ConfigError, probes
from infragym.agent import ProbeAgent, run_episode
from infragym.env import Env, EnvOptions
from infragym.grading import deploy, grade_workspace
from infragym.probes import PROBES, TAMPER_REPORT, probe
from infragym.sandbox import Cluster
from infragym.tasks import Band, find_task, load_task, validate_layout
from infragym.tasks._validation import parse_validation
from infragym.testing import TierRow

PROBE_DIR = Path(probes.__file__).parent
KV = find_task("kv-replicated")


# -- the catalogue ---------------------------------------------------------------------


def test_the_catalogue_holds_every_cheat_the_issue_names() -> None:
    assert len(PROBES) >= 10
    assert {
        "always-200", "refuse-after-start", "stale-cache", "one-node", "outlive-agent",
        "tamper-deploy",
    } <= set(PROBES)  # fmt: skip
    kinds = {p.kind for p in PROBES.values()}
    assert kinds == {"server", "wrapping", "agent"}
    assert all(0.0 <= p.ceiling <= 0.3 for p in PROBES.values())
    with pytest.raises(ConfigError, match="known: "):
        probe("nope")


def test_every_probe_builds_a_workspace_with_start_sh(tmp_path: Path) -> None:
    base = KV.solution("robust")
    for name, p in PROBES.items():
        ws = p.materialize(tmp_path / name, KV.probe_base(name), KV.workspace)
        start = (ws / "start.sh").read_text()
        assert start.startswith("#!/bin/sh"), name
        for py in ws.rglob("*.py"):
            compile(py.read_text(), str(py), "exec")
        if p.kind == "server":
            assert f"PROBE_MODE={name} exec" in start
        if p.kind == "wrapping":
            assert f"PROBE_MODE={name} " in start and "/srv/app/start-base.sh &" in start
            assert (ws / "start-base.sh").read_bytes() == (base / "start.sh").read_bytes()
            assert (ws / "server.py").read_bytes() == (base / "server.py").read_bytes()
    # an agent probe submits what it was given plus what it wrote
    outlive = tmp_path / "outlive-agent"
    assert (outlive / "start.sh").read_bytes() == (KV.workspace / "start.sh").read_bytes()
    assert (outlive / ".later" / "start.sh").read_bytes() == (base / "start.sh").read_bytes()


def test_agent_probes_script_their_episode(tmp_path: Path) -> None:
    base = KV.solution("robust")
    calls = PROBES["outlive-agent"].actions(["n1", "n2"], base)
    tools = [c[0] for c in calls]
    written = {str(a["path"]) for t, a in calls if t == "write_file"}
    assert written == {".outlive.py", ".later/start.sh", ".later/server.py"}
    assert tools[-5:] == ["host_bash"] * 4 + ["bash"]
    assert {a["host"] for t, a in calls if t == "host_bash"} == {"n1", "n2"}
    assert 'watch "$PWD" n1 ' in str(calls[-1][1]["command"])
    alone = PROBES["outlive-agent"].actions([], base)
    assert "watch-after" in str(alone[-1][1]["command"]) and "host_bash" not in str(alone)
    tamper = PROBES["tamper-deploy"].actions(["n1"])
    assert [t for t, _ in tamper] == ["write_file"] * 3 + ["host_bash"] * 2
    with pytest.raises(ConfigError, match="graded as one"):
        PROBES["always-200"].actions(["n1"])


def test_a_probe_built_on_a_reference_needs_that_reference_and_the_port(tmp_path: Path) -> None:
    d = tiny_task(tmp_path / "tasks", grader=WORKSPACE_GRADER)
    with (d / "task.toml").open("a") as f:
        f.write('[validation]\nprobes = ["refuse-after-start", "outlive-agent"]\n'
                'probe_base = "ha"\n')  # fmt: skip
    problems = validate_layout(d)
    assert sum("solutions/ha/ (probe_base)" in p for p in problems) == 2, problems
    assert any("'refuse-after-start' moves the reference" in p for p in problems), problems
    with pytest.raises(ConfigError, match="built from one of the task's reference"):
        PROBES["stale-cache"].files(None)
    with pytest.raises(ConfigError, match=r"no start\.sh"):
        PROBES["one-node"].files(tmp_path / "tasks" / "tiny" / "solutions" / "robust")
    # with the reference there, the agent probe is built for the task
    ok = tiny_task(tmp_path / "ok", grader=WORKSPACE_GRADER)
    with (ok / "task.toml").open("a") as f:
        f.write('[validation]\nprobes = ["outlive-agent"]\n')
    agent = ProbeAgent(load_task(ok), "outlive-agent")
    assert agent.base == ok / "solutions" / "robust" and agent.name == "probe:outlive-agent"
    with pytest.raises(ConfigError, match="is a workspace, not an agent"):
        ProbeAgent(load_task(ok), "one-node")


def test_probe_base_is_read_and_checked() -> None:
    problems: list[str] = []
    assert parse_validation({"probe_base": "naive"}, problems).probe_base == "naive"
    assert parse_validation({}, problems).probe_base == "robust" and not problems
    parse_validation({"probe_base": "../robust"}, problems)
    assert problems == ["task.toml: [validation]: probe_base must name a solutions/ folder, "
                        "not '../robust'"]  # fmt: skip


def test_a_probe_that_must_pass_the_functional_tests_and_did_not_tested_nothing() -> None:
    row = TierRow("one-node", Band(0.0, 0.3), {1: 0.0, 2: 0.25}, functional={1: 0.5, 2: 1.0},
                  must_pass_functional=True)  # fmt: skip
    assert row.problems == [
        "one-node seed 1: functional score 0.5: this probe serves honestly through the "
        "functional tests and cheats after them, so failing them it tested nothing (is it "
        "too slow to start for this task?)"
    ]
    assert not TierRow("stale-cache", Band(0.0, 0.05), {1: 0.0}, functional={1: 0.5}).problems


def test_the_authoring_guide_lists_every_probe_with_its_ceiling(repo_root: Path) -> None:
    guide = (repo_root / "docs" / "task-authoring.md").read_text()
    for name, p in PROBES.items():
        row = next((line for line in guide.splitlines() if line.startswith(f"| `{name}`")), "")
        assert row, f"docs/task-authoring.md has no catalogue row for {name}"
        assert f"| {p.ceiling:g} |" in row, (name, row)


# -- the wrapping probes' front, on loopback ---------------------------------------------


class _Store(BaseHTTPRequestHandler):
    """A shared key-value store: what a replicated reference looks like from outside."""

    protocol_version = "HTTP/1.1"
    data: ClassVar[dict[str, bytes]] = {}
    label = b""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        value = self.data.get(self.path)
        self._reply(404, b"") if value is None else self._reply(200, self.label + value)

    def do_PUT(self) -> None:
        self.data[self.path] = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply(204, b"")


def _free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _store(address: str, port: int, label: bytes = b"") -> Iterator[None]:
    handler = type("Store", (_Store,), {"data": {}, "label": label})
    server = ThreadingHTTPServer((address, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _front(mode: str, inner: int, state: Path, **env: str) -> Iterator[int]:
    port = _free_port()
    full = {**os.environ, "PROBE_MODE": mode, "PORT": str(port), "PROBE_INNER_PORT": str(inner),
            "PROBE_STATE_DIR": str(state), **env}  # fmt: skip
    p = subprocess.Popen([sys.executable, str(PROBE_DIR / "_front.py")], env=full)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert p.poll() is None and time.monotonic() < deadline, "the front never listened"
            time.sleep(0.02)
        yield port
    finally:
        p.terminate()
        p.wait(10)


def _call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_stale_cache_serves_an_old_value_after_a_write_through_another_host(
    tmp_path: Path,
) -> None:
    inner = _free_port()
    with (
        _store("127.0.0.1", inner),
        _front("stale-cache", inner, tmp_path) as a,
        _front("stale-cache", inner, tmp_path) as b,
    ):
        assert _call(a, "PUT", "/kv/k", b"v1")[0] == 204
        assert _call(b, "GET", "/kv/k") == (200, b"v1")  # b caches v1
        assert _call(a, "GET", "/kv/k") == (200, b"v1")  # so does a
        assert _call(a, "PUT", "/kv/k", b"v2")[0] == 204  # a drops its entry, b does not
        assert _call(a, "GET", "/kv/k") == (200, b"v2")
        assert _call(b, "GET", "/kv/k") == (200, b"v1"), "the write through a must not reach b"
        assert _call(b, "GET", "/kv/missing") == (404, b"")  # misses are not cached
        assert _call(b, "PUT", "/kv/missing", b"x")[0] == 204
        assert _call(b, "GET", "/kv/missing") == (200, b"x")


def test_refuse_after_start_is_honest_then_refuses_even_after_a_restart(tmp_path: Path) -> None:
    inner = _free_port()
    with _store("127.0.0.1", inner):
        with _front("refuse-after-start", inner, tmp_path, PROBE_REFUSE_AFTER_S="0.5") as f:
            assert _call(f, "PUT", "/kv/k", b"v")[0] == 204
            assert _call(f, "GET", "/kv/k") == (200, b"v")
            time.sleep(0.6)
            assert _call(f, "GET", "/kv/k")[0] == 503
            assert _call(f, "PUT", "/kv/k", b"w")[0] == 503
        # a crash does not restart its clock: it was kept in the state directory
        with _front("refuse-after-start", inner, tmp_path, PROBE_REFUSE_AFTER_S="0.5") as f:
            assert _call(f, "GET", "/kv/k")[0] == 503


def test_one_node_sends_every_host_to_the_first_hosts_reference(tmp_path: Path) -> None:
    inner = _free_port()
    with (
        _store("127.0.0.2", inner, b"first:"),
        _store("127.0.0.1", inner, b"local:"),
        _front("one-node", inner, tmp_path, PEERS="n1=127.0.0.2,n2=127.0.0.1") as f,
    ):
        assert _call(f, "PUT", "/kv/k", b"v")[0] == 204
        assert _call(f, "GET", "/kv/k") == (200, b"first:v")
    # the first host's reference down: certainly not done (503), as a proxy says
    with _front("one-node", inner, tmp_path, PEERS="n1=127.0.0.2,n2=127.0.0.1") as f:
        assert _call(f, "GET", "/kv/k")[0] == 503


def test_the_front_queues_many_connections_at_once(tmp_path: Path) -> None:
    """counter-durable's functional tests send 20 requests at once: with the stdlib's listen
    backlog of 5, connections were dropped and retried a second later, past the clients'
    timeout (one-node failed the functional tests its reference passes)."""
    inner = _free_port()
    with _front("one-node", inner, tmp_path, PEERS="n1=127.0.0.1") as f:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{f}"], capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    assert out[0] == "LISTEN" and int(out[2]) >= 64, out  # Send-Q of a listener: its backlog


def test_the_first_host_comes_from_peers_or_etc_hosts() -> None:
    sys.path.insert(0, str(PROBE_DIR))
    try:
        import _front as front  # the script as deployed, not a package module
    finally:
        sys.path.remove(str(PROBE_DIR))
    hosts = "127.0.0.1 localhost\n::1 localhost\n198.18.3.1 n1\n198.18.3.2 n2\n"
    assert front.first_host("n1=198.18.0.1,n2=198.18.0.2", hosts) == "198.18.0.1"
    assert front.first_host("198.18.0.9:8080,198.18.0.8:8080", "") == "198.18.0.9"
    assert front.first_host("", hosts) == "198.18.3.1"
    with pytest.raises(SystemExit, match="no PEERS"):
        front.first_host("", "127.0.0.1 localhost\n")


# -- the outlive payload: what it would do if it survived ----------------------------------


def _outlive(tmp_path: Path) -> Path:
    ws = PROBES["outlive-agent"].materialize(tmp_path / "ws", KV.solution("robust"), KV.workspace)
    assert b"not implemented" in (ws / "start.sh").read_bytes()
    return ws


def test_the_outlive_watcher_puts_the_reference_in_place_once_the_dev_host_goes(
    tmp_path: Path,
) -> None:
    ws = _outlive(tmp_path)
    keeper = socket.create_server(("127.0.0.1", 0))
    port = keeper.getsockname()[1]
    argv = [sys.executable, str(ws / ".outlive.py"), "watch", str(ws), "127.0.0.1", str(port)]
    watcher = subprocess.Popen([*argv, "--foreground"])
    try:
        keeper.settimeout(10)
        keeper.accept()[0].close()  # the watcher has seen its keeper
        assert b"not implemented" in (ws / "start.sh").read_bytes()
        keeper.close()  # the dev hosts are torn down: the agent submitted
        assert watcher.wait(10) == 0
    finally:
        watcher.kill()
    robust = KV.solution("robust")
    assert (ws / "start.sh").read_bytes() == (robust / "start.sh").read_bytes()
    assert (ws / "server.py").read_bytes() == (robust / "server.py").read_bytes()


# -- agent probes through an Env, and the tamper probe on graded hosts (root) ----------------


@needs_root
@pytest.mark.usefixtures("no_runs_left")
def test_outlive_agent_earns_what_it_submitted_and_nothing_survives(tmp_path: Path) -> None:
    """On the tiny task (graded by reading the workspace: 42 in answer.txt) the probe arms
    its keeper and two watchers and submits the starter: 0. The same workspace with the
    payload's copy done, as it would be had a watcher outlived the agent, earns 1."""
    d = tiny_task(tmp_path / "tasks", grader=WORKSPACE_GRADER)
    task = load_task(d)
    agent = ProbeAgent(task, "outlive-agent")
    env = Env(task, EnvOptions(artifacts_dir=tmp_path / "episodes"))
    last = asyncio.run(run_episode(env, agent, 1))
    said = "\n".join(r.observation.content for r in agent.transcript)
    assert "keeper up on n1" in said and "watchers running: 2" in said, said
    assert last.terminated and last.reward == 0.0
    ws = PROBES["outlive-agent"].materialize(tmp_path / "ws", task.probe_base("outlive-agent"))
    subprocess.run(
        [sys.executable, str(ws / ".outlive.py"), "watch-after", str(ws), "0", "--foreground"],
        check=True,
        timeout=30,
    )
    graded = asyncio.run(grade_workspace(task, ws, 1, tmp_path / "cheat"))
    assert graded.reward == 1.0


@needs_root
def test_tamper_deploy_is_refused_on_every_graded_host(tmp_path: Path) -> None:
    ws = PROBES["tamper-deploy"].materialize(tmp_path / "ws")
    before = {p.name: p.read_bytes() for p in ws.iterdir()}
    with Cluster(2, app=ws) as c:
        env = {h.name: {"PORT": "8080", "NODE_ADDRESS": h.address} for h in c.hosts}
        d = asyncio.run(deploy(c, ["/bin/sh", "/srv/app/start.sh"], lambda h: env[h.name],
                               port=8080, timeout=20))  # fmt: skip
        assert not d.problems, d.problems
        reports = {h.name: json.loads((h.tmp_dir / Path(TAMPER_REPORT).name).read_text())
                   for h in c.hosts}  # fmt: skip
        for h in c.hosts:  # the deployed copy and /etc/hosts are as the platform made them
            r = h.run(["sh", "-c", "cat /etc/hosts; ls /srv/app"], timeout=10)
            assert f"{h.address} {h.name}".encode() in r.stdout and b"tamper.py" in r.stdout
    for name, report in reports.items():
        done = sorted(k for k, v in report.items() if v["done"])
        assert done == ["delete-evidence"], (name, report)
        assert "Read-only" in report["rewrite-start"]["what"], report
    assert {p.name: p.read_bytes() for p in ws.iterdir()} == before
