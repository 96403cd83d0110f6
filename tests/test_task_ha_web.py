"""The ha-web task: its checks judge behaviour, its tier is addressed by the variant, and a
grading stopped at any point (Ctrl-C, kill -9 then `infragym cleanup`) leaves no haproxy,
keepalived, address or namespace behind.

Seed 1 of every tier (robust, naive and the never-eject probe through the whole sweep) is
graded by tests/test_builtin_tasks.py against the bands of task.toml; the full seed range
runs outside CI (`infragym validate ha-web --tiers`) and is quoted in the README. So this
file grades nothing to the end: its checks run on histories written by hand, and the
stopped gradings stop early in the load phase.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import assert_no_leftovers, needs_root, recording_clusters
from histories import HistoryBuilder

from infragym.checkers import CheckResult, Verdict
from infragym.env import SyncEnv, ToolCall, make
from infragym.grading import grade_workspace, load_grader
from infragym.history import History
from infragym.sandbox import _state
from infragym.tasks import find_task, validate_layout

TASK = find_task("ha-web")
REPO = Path(__file__).resolve().parent.parent


def grader() -> ModuleType:
    """The hidden grader's module, imported as grading imports it."""
    return sys.modules[load_grader(TASK).__module__]


def test_the_task_folder_is_valid() -> None:
    assert validate_layout(TASK.path) == []
    assert TASK.spec.apt == ("haproxy", "keepalived")
    bands = TASK.spec.validation.bands
    assert {"broken", "naive", "robust", "probe-static-vip", "probe-never-eject"} <= set(bands)


def test_the_tier_is_named_and_swept_by_the_variant() -> None:
    g = grader()
    seen = set()
    for seed in range(1, 40):
        v = TASK.spec.variant(seed)
        tier = g.Tier.of(v)
        seen.add((len(tier.lbs), len(tier.apps)))
        assert tier.lbs == tuple(f"{v['lb_prefix']}{i + 1}" for i in range(int(v["lbs"])))
        assert tier.apps == tuple(f"{v['app_prefix']}{i + 1}" for i in range(int(v["apps"])))
        # the roles make the hosts, load balancers first; the agent's dev hosts are the same
        assert v.host_names == v.dev_host_names == (*tier.lbs, *tier.apps)
        assert {n: r.net_admin for n, r in v.resources.items()} == {
            **dict.fromkeys(tier.lbs, True),
            **dict.fromkeys(tier.apps, False),
        }
        order = tier.sweep_order()
        assert sorted(order) == sorted(v.host_names)
        # roles alternate while both last: an LB's next fault is never right after its own
        assert all(
            order[i] in tier.lbs for i in range(0, 2 * min(len(tier.lbs), len(tier.apps)), 2)
        )
        schedule = g.sweep_schedule(order, fault_s=g.FAULT_S, gap_s=g.GAP_S, start=g.START_S)
        kinds = {(f.spec.kind, f.spec.targets[0]) for f in schedule.faults}
        assert kinds == {(k, h) for k in ("crash", "pause", "partition") for h in v.host_names}
    assert seen == {(2, 2), (2, 3), (3, 2), (3, 3)}


ENV_NAMES = ("ROLE", "NODE_ID", "NODE_ADDRESS", "LBS", "APPS", "VIP", "VIP_CIDR", "PORT",
             "APP_PORT", "FAILOVER_S", "DATA_DIR")  # fmt: skip
SHOW_ENV = " ; ".join(f'echo "{n}=${n}"' for n in ENV_NAMES)


def shown_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line.split("=")[0] in ENV_NAMES)


@needs_root
def test_the_agents_dev_hosts_are_the_tier_with_the_graders_contract(tmp_path: Path) -> None:
    """The agent's dev hosts are the variant's load balancers (which may add the VIP) and
    app hosts, each with the contract's environment in host_bash, the same the grader
    gives the production hosts of that cluster; the provided app starts on an app host."""
    g = grader()
    seed = 4
    v = TASK.spec.variant(seed)
    tier = g.Tier.of(v)
    assert (len(tier.lbs), len(tier.apps)) == (3, 3)
    env = SyncEnv(make("ha-web", artifacts_dir=tmp_path / "art"))
    try:
        obs = env.reset(seed=seed)
        assert obs.dev_hosts == (*tier.lbs, *tier.apps)
        assert "host_bash" in {t.name for t in obs.tools}
        c = env.env.dev_cluster
        assert c is not None and c.subnet is not None

        def host_bash(host: str, command: str, background: bool = False) -> str:
            call = {"host": host, "command": command, "background": background}
            return str(env.step(ToolCall("host_bash", call)).observation.content)

        vip = str(c.subnet.network_address + int(v["vip_host"]))
        assert vip in c.free_addresses()
        # what the grader would give these hosts (production hosts are built the same)
        graders = g.contract_envs(v, c)
        assert g.vip_of(c, graders) == vip
        lbs = ",".join(f"{n}={c.host(n).address}" for n in tier.lbs)
        apps = ",".join(f"{n}={c.host(n).address}" for n in tier.apps)
        for name in (tier.lbs[1], tier.apps[0]):
            seen = shown_env(host_bash(name, SHOW_ENV))
            assert seen == graders[name]
            assert seen == {
                "ROLE": "lb" if name in tier.lbs else "app",
                "NODE_ID": name,
                "NODE_ADDRESS": c.host(name).address,
                "LBS": lbs,
                "APPS": apps,
                "VIP": vip,
                "VIP_CIDR": f"{vip}/24",
                "PORT": str(v["port"]),
                "APP_PORT": str(v["app_port"]),
                "FAILOVER_S": str(v["failover_s"]),
                "DATA_DIR": "/srv/data",
            }
        # a load balancer may own the VIP (keepalived does so); an app host may not
        assert g.vip_holders(c, tier.lbs, vip) == []
        out = host_bash(tier.lbs[1], 'ip addr add "$VIP_CIDR" dev eth0 && echo added')
        assert "added" in out, out
        assert g.vip_holders(c, tier.lbs, vip) == [tier.lbs[1]]
        out = host_bash(tier.apps[0], 'ip addr add "$VIP_CIDR" dev eth0 || echo refused')
        assert "refused" in out, out
        # the workspace's start.sh runs the provided app on an app host, reachable by a
        # load balancer at the contract's address and port
        app = tier.apps[1]
        out = host_bash(app, "/bin/sh /srv/app/start.sh", background=True)
        assert f"started bg1 on {app}" in out, out
        url = f"http://{c.host(app).address}:{v['app_port']}/whoami"
        fetch = (
            "for i in $(seq 50); do python3 -c 'import sys, urllib.request; "
            f"print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' {url} "
            "2>/dev/null && break; sleep 0.2; done"
        )
        assert app in host_bash(tier.lbs[0], fetch).splitlines()
        ids = [c.run_id]
    finally:
        env.close()
    for run_id in ids:
        assert_no_leftovers(run_id)


# -- the checks, on histories written by hand ----------------------------------------------


def vip_load(b: HistoryBuilder, start: float, end: float, ok: Any = "app1", rate: float = 20.0,
             fail_from: float | None = None, fail_to: float | None = None) -> None:  # fmt: skip
    """Reads of /whoami at the VIP every 1/rate s, answered by ``ok`` (a backend's name,
    or a callable of the time), failing (timeouts) in [fail_from, fail_to)."""
    n = round((end - start) * rate)
    for i in range(n):
        t = start + i / rate
        failed = fail_from is not None and fail_to is not None and fail_from <= t < fail_to
        who = ok(t) if callable(ok) else ok
        if failed:
            b.op("read", "/whoami", t=t, done=t + 1.0, outcome="info", intended=t, node="vip")
        else:
            b.op("read", "/whoami", t=t, done=t + 0.005, result=who, intended=t, node="vip")


def polls(start: float, end: float, holders: Any, step: float = 0.2) -> list[Any]:
    out, t = [], start
    while t < end:
        out.append([round(t, 3), holders(t) if callable(holders) else holders])
        t += step
    return out


def test_split_brain_is_two_holders_among_the_hosts_the_fault_left() -> None:
    g = grader()
    b = HistoryBuilder()
    b.fault("pause-lb1", 5.0, 8.5, fault="pause", targets=("lb1",))
    h = b.build()
    check = g.SplitBrain()

    def judged(holders: Any) -> Any:
        return check.check(History(h.ops, h.faults, {"vip_polls": polls(0, 15, holders)}))

    assert judged(["lb1"]).verdict is Verdict.PASS
    # the paused master keeps its address while the backup takes over: not a split brain
    assert judged(lambda t: ["lb1", "lb2"] if 6 <= t < 10 else ["lb1"]).verdict is Verdict.PASS
    # two masters meeting after the heal, resolved within the grace: not a split brain
    late = judged(lambda t: ["lb1", "lb2"] if 6 <= t < 10.6 else ["lb1"])
    assert late.verdict is Verdict.FAIL and "at 10.6 s" in late.explanation
    static = judged(["lb1", "lb2"])
    assert static.verdict is Verdict.FAIL and static.score == 0.0
    # all but the polls while lb1 was paused (lb2 alone counted then) and in the grace
    assert static.metrics["split"] > 40 and static.judged > 50


def test_ejection_and_failover_are_measured_per_window() -> None:
    g = grader()
    b = HistoryBuilder()
    b.fault("pause-app1", 5.0, 8.5, fault="pause", targets=("app1",))
    b.fault("crash-lb1", 14.0, 17.5, fault="crash", targets=("lb1",))
    vip_load(b, 0, 5, fail_from=None)
    vip_load(b, 5, 8.5, fail_from=5.0, fail_to=5.8)  # ejected within 0.8 s
    vip_load(b, 8.5, 14)
    vip_load(b, 14, 17.5, fail_from=14.0, fail_to=16.2)  # the VIP moved in 2.2 s
    vip_load(b, 17.5, 25)
    h = b.build()
    assert g.Failover(2.0, name="ejection", hosts=("app1", "app2")).check(h).verdict is Verdict.PASS
    failover = g.Failover(1.5).check(h)
    assert failover.verdict is Verdict.FAIL and failover.score == 0.5
    assert "crash-lb1 2.1" in failover.explanation

    slow = HistoryBuilder()
    slow.fault("pause-app1", 5.0, 8.5, fault="pause", targets=("app1",))
    # a frozen backend never ejected: every other request times out for the whole window
    vip_load(slow, 0, 5)
    for i in range(70):
        t = 5.0 + i / 20
        if i % 2:
            slow.op("read", "/whoami", t=t, done=t + 1.0, outcome="info", intended=t, node="vip")
        else:
            slow.op("read", "/whoami", t=t, done=t + 0.005, result="app2", intended=t, node="vip")
    vip_load(slow, 8.5, 12)
    never = g.Failover(2.0, name="ejection", hosts=("app1",)).check(slow.build())
    assert never.verdict is Verdict.FAIL and "pause-app1 never" in never.explanation

    tried = HistoryBuilder()
    tried.fault("pause-app1", 5.0, 8.5, fault="pause", targets=("app1",))
    # never ejected, but every other request goes elsewhere after a 0.3 s connect timeout
    vip_load(tried, 0, 5)
    for i in range(70):
        t = 5.0 + i / 20
        tried.op("read", "/whoami", t=t, done=t + (0.305 if i % 2 else 0.005), result="app2",
                 intended=t, node="vip")  # fmt: skip
    vip_load(tried, 8.5, 12)
    h = tried.build()
    assert g.Failover(2.0, hosts=("app1",)).check(h).verdict is Verdict.PASS  # all ok
    ejection = g.Failover(2.0, name="ejection", hosts=("app1",), fast_s=g.EJECT_FAST_S)
    assert ejection.check(h).verdict is Verdict.FAIL


def test_back_to_strength_wants_each_healed_host_serving_again() -> None:
    g = grader()
    b = HistoryBuilder()
    b.fault("crash-app2", 5.0, 8.5, fault="crash", targets=("app2",))
    b.fault("crash-lb2", 14.0, 17.5, fault="crash", targets=("lb2",))
    # app2 answers again from 9 s; lb2 never answers on its own address after its heal
    vip_load(b, 0, 30, ok=lambda t: "app1" if 5 <= t < 9 or int(t * 20) % 2 else "app2")
    for i in range(60):
        t = i / 2
        b.op("request", "/whoami", t=t, done=t + 0.005, outcome="ok" if t < 14 else "fail",
             intended=t, node="lb2")  # fmt: skip
    r = g.BackToStrength(("app1", "app2"), ("lb1", "lb2")).check(b.build())
    assert r.verdict is Verdict.FAIL and r.score == 0.5
    assert "not after crash-lb2" in r.explanation


def results(**verdicts: str) -> dict[str, CheckResult]:
    out = {}
    for n in ("functional", *grader().GATED):
        failed = n in verdicts
        metrics = {"availability": 0.5 if failed else 1.0}
        out[n] = CheckResult(
            n, Verdict(verdicts.get(n, "pass")), 0.0 if failed else 1.0, "", metrics, judged=1000
        )
    return out


@pytest.mark.parametrize(
    ("failed", "cap"),
    [("functional", 0.0), ("serving", 0.0), ("no-spof", 0.25), ("split-brain", 0.1),
     ("ejection", 0.5)],
)  # fmt: skip
def test_the_rubric_caps_each_failed_gate(failed: str, cap: float) -> None:
    reward = grader().rubric().score(results(**{failed: "fail"}))
    assert reward.reward <= cap
    assert grader().rubric().score(results()).reward == pytest.approx(1.0)


# -- nothing left behind --------------------------------------------------------------------

GRADE_ONE = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from infragym.grading import grade_workspace
    from infragym.tasks import find_task
    task = find_task("ha-web")
    def progress(msg):
        print(msg, flush=True)
    asyncio.run(grade_workspace(task, task.solution("robust"), 1, Path(sys.argv[1]),
                                progress=progress))
    """
)


def ha_processes(run_id: str) -> list[str]:
    """haproxy and keepalived processes in ``run_id``'s cgroups."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroup = (proc / "cgroup").read_text()
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if run_id in cgroup and comm in ("haproxy", "keepalived"):
            found.append(f"{proc.name} {comm}")
    return found


def stop_in_load_phase(tmp_path: Path, sig: signal.Signals) -> tuple[list[str], int]:
    """Start a robust grading, stop it with ``sig`` once its load phase runs (faults are
    being applied); the run ids it made and its exit status."""
    before = {p.name for p in _state.STATE_DIR.glob("*.json")}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", GRADE_ONE, str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        # a grading may first wait for machine-wide room (admission) on a busy machine
        deadline = time.monotonic() + 280
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("load for") or time.monotonic() > deadline:
                break
        assert seen and seen[-1].startswith("load for"), "no load phase:\n" + "".join(seen)
        time.sleep(6.0)  # into the sweep: a host crashed, the VIP moved
        records = [
            json.loads((_state.STATE_DIR / n).read_text())
            for n in {p.name for p in _state.STATE_DIR.glob("*.json")} - before
        ]
        run_ids = [r["run_id"] for r in records if r.get("owner_pid") == proc.pid]
        assert run_ids, "the grading made no cluster"
        assert any(ha_processes(r) for r in run_ids), "no haproxy or keepalived ran"
        os.killpg(proc.pid, sig)
        proc.communicate(timeout=60)
    finally:  # a failed check leaves no grading running into the next test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.communicate(timeout=120)
    return run_ids, proc.returncode


@needs_root
@pytest.mark.timeout(600)  # the grading may wait for room first
def test_ctrl_c_in_the_load_phase_leaves_nothing(tmp_path: Path) -> None:
    run_ids, _ = stop_in_load_phase(tmp_path, signal.SIGINT)
    for run_id in run_ids:
        assert ha_processes(run_id) == []
        assert_no_leftovers(run_id)


@needs_root
@pytest.mark.timeout(600)  # the grading may wait for room first
def test_kill_9_in_the_load_phase_then_cleanup_leaves_nothing(tmp_path: Path) -> None:
    run_ids, status = stop_in_load_phase(tmp_path, signal.SIGKILL)
    assert status == -signal.SIGKILL
    out = subprocess.run(
        [sys.executable, "-m", "infragym.cli.main", "cleanup"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    for run_id in run_ids:
        assert ha_processes(run_id) == []
        assert_no_leftovers(run_id)


@needs_root
@pytest.mark.parametrize("tier", ["broken", "probe-static-vip"])
def test_a_failed_grading_leaves_nothing(tier: str, tmp_path: Path) -> None:
    """broken never listens; the static VIP runs haproxy with the VIP on every load
    balancer and fails the functional phase: both cheap, both leave nothing."""
    with recording_clusters() as run_ids:
        result = asyncio.run(grade_workspace(TASK, TASK.solution(tier), 1, tmp_path))
    assert result.error is None and result.reward == 0.0
    if tier == "probe-static-vip":
        assert "exactly one load balancer must hold it" in " ".join(result.notes)
    assert run_ids
    for run_id in run_ids:
        assert ha_processes(run_id) == []
        assert_no_leftovers(run_id)
