"""A live episode whose production cluster grows (a phase's ``add_hosts``), on the test
task ``tests/tasks/live-grow``: the declaration's checks, the names the growth gives, the
hosts as the operator's tools and the phase grader see them, the history's record of
the growth, and nothing left after the episode."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from conftest import assert_no_leftovers, needs_root

from infragym import ConfigError
from infragym.env import ToolCall, make
from infragym.env._live import episode_hosts, growth_plan, phase_schedules
from infragym.history import History
from infragym.tasks import AddHosts, load_task, validate_task

TASK = Path(__file__).parent / "tasks" / "live-grow"
LIVE_CONFIG = Path(__file__).parent / "tasks" / "live-config"


def _edited(tmp_path: Path, task: Path, old: str, new: str) -> Path:
    dest = tmp_path / task.name
    shutil.copytree(task, dest)
    text = (dest / "task.toml").read_text()
    assert old in text
    (dest / "task.toml").write_text(text.replace(old, new, 1))
    return dest


GROW = 'add_hosts = { role = "kv", count = 2, clients = true }'


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ('add_hosts = { role = "db", count = 2 }', "add_hosts.role must be one of the roles: kv"),
        ("add_hosts = { count = 2 }", "add_hosts.role must be one of the roles: kv (not None)"),
        ('add_hosts = { role = "kv", count = 0 }', "add_hosts.count must be a whole number in"),
        ('add_hosts = { role = "kv" }', "add_hosts.count is missing"),
        ('add_hosts = { role = "kv", count = 1.5 }', "add_hosts.count must be a whole number"),
        ('add_hosts = { role = "kv", count = 15 }', "the phases add 15 hosts to a cluster of up"),
        ('add_hosts = { role = "kv", count = 2, when = 3 }', "unknown key 'when'"),
        ('add_hosts = { role = "kv", count = 2, start = "yes" }', "start must be true or false"),
        ('add_hosts = { role = "kv", count = 2, clients = 1 }', "clients must be true or false"),
        ('add_hosts = "kv"', "add_hosts must be a table"),
    ],
)
def test_bad_add_hosts_declarations_are_refused(tmp_path: Path, new: str, message: str) -> None:
    problems = validate_task(_edited(tmp_path, TASK, GROW, new))
    assert any(message in p for p in problems), problems


def test_a_role_in_a_task_without_roles_is_refused(tmp_path: Path) -> None:
    task = _edited(
        tmp_path,
        LIVE_CONFIG,
        "grade_s = 20\nfaults",
        'grade_s = 20\nadd_hosts = { role = "kv", count = 1 }\nfaults',
    )
    problems = validate_task(task)
    assert any("declares no [topology.roles]; leave role out" in p for p in problems), problems


def test_the_growth_plan_names_the_next_hosts_of_the_role_with_its_resources(
    tmp_path: Path,
) -> None:
    task = load_task(TASK)
    v = task.spec.variant(1)
    plan = growth_plan(task, v)
    assert [new for _, new in plan] == [(), ("kv3", "kv4"), (), ()]
    grown = plan[1][0]
    assert plan[3][0].host_names == grown.host_names
    assert grown.roles == {"kv": ("kv1", "kv2", "kv3", "kv4")}
    assert grown.resources["kv4"] == v.resources["kv1"]  # disk_mb = 4, as the role says
    assert grown.cluster_options(["kv3", "kv4"])["data_sizes"] == {"kv3": 4 << 20, "kv4": 4 << 20}
    assert episode_hosts(task, v) == ("kv1", "kv2", "kv3", "kv4")
    # the grown cluster's contract on a new host, the old one's on an old host
    hosts = {n: f"198.18.0.{i + 1}" for i, n in enumerate(grown.host_names)}
    assert task.spec.host_env("kv3", hosts, grown)["PEERS"] == ",".join(
        f"{n}={a}" for n, a in hosts.items()
    )
    with pytest.raises(ConfigError, match="no role of the task: 'db'"):
        task.spec.grow(v, AddHosts(1, "db"))
    # without roles: the host prefix and the next numbers
    plain = load_task(LIVE_CONFIG)
    grown2, new = plain.spec.grow(plain.spec.variant(1), AddHosts(2))
    assert new == ("n3", "n4") and grown2.host_names == ("n1", "n2", "n3", "n4")
    with pytest.raises(ConfigError, match="must name a role"):
        task.spec.grow(v, AddHosts(1))


BACKUP = "seq 1 100 > /srv/data/store/records.log && cp /srv/data/store/records.log /srv/etc/b"
FREE = (
    'until [ "$(df --output=avail /srv/data | tail -1)" -eq 0 ]; do sleep 0.1; done; '
    ": > /srv/data/store/debug.log; df --output=avail -B1 /srv/data | tail -1"
)
# the crash kills whatever runs on kv2, this wait too if it came first: waited for twice
DAMAGED = 'until [ "$(wc -l < /srv/data/store/records.log)" -lt 100 ]; do sleep 0.1; done'
RESTORE = (
    "cp /srv/etc/b /srv/data/store/records.log; "
    "until python3 -c \"import urllib.request as u; u.urlopen('http://kv2:8080/health')\" "
    "2>/dev/null; do sleep 0.1; done"
)


def test_a_later_phases_incident_may_hit_an_added_host(tmp_path: Path) -> None:
    task = load_task(_edited(tmp_path, TASK, 'host = "kv1", at = 0', 'host = "any", at = 0'))
    v = task.spec.variant(1)
    hit = {phase_schedules(task, v, seed)["disk"].faults[0].spec.targets for seed in range(40)}
    assert hit == {("kv1",), ("kv2",), ("kv3",), ("kv4",)}
    assert phase_schedules(task, v, 7) == phase_schedules(task, v, 7)


OPERATOR: list[ToolCall] = [
    ToolCall("service", {"host": "kv3", "action": "status"}),  # not there yet
    ToolCall("host_bash", {"host": "kv2", "command": BACKUP}),
    ToolCall("end_phase", {"summary": "kv1 and kv2 run the store"}),
    ToolCall("host_bash", {"host": "kv3", "command": 'echo "$PEERS"; ls /srv/data'}),
    ToolCall("service", {"host": "kv3", "action": "status"}),
    ToolCall("service", {"host": "kv3", "action": "start"}),
    ToolCall("service", {"host": "kv4", "action": "start"}),
    ToolCall("host_bash", {"host": "kv1", "command": 'echo "$PEERS"'}),
    ToolCall("end_phase", {"summary": "kv3 and kv4 run the store"}),
    ToolCall("host_bash", {"host": "kv1", "command": FREE}),
    ToolCall("end_phase", {"summary": "truncated the runaway debug log"}),
    ToolCall("host_bash", {"host": "kv2", "command": DAMAGED}),
    ToolCall("host_bash", {"host": "kv2", "command": DAMAGED}),
    ToolCall("host_bash", {"host": "kv2", "command": RESTORE}),
    ToolCall("end_phase", {"summary": "restored kv2's records from the backup"}),
]


@needs_root
@pytest.mark.timeout(180)
def test_a_phase_adds_hosts_the_operator_starts_and_the_grader_sees(tmp_path: Path) -> None:
    env = make(str(TASK), artifacts_dir=str(tmp_path / "art"))
    host_enum = env.tools[0].parameters["properties"]["host"]["enum"]
    assert host_enum == ["kv1", "kv2", "kv3", "kv4"]

    async def main() -> tuple[str, list]:  # type: ignore[type-arg]
        await env.reset(seed=1)
        assert env.live is not None and env.live.cluster is not None
        run_id = env.live.cluster.run_id
        assert env.live.cluster.names == ["kv1", "kv2"]
        out = []
        try:
            for call in OPERATOR:
                out.append(await env.step(call))
                if out[-1].terminated or out[-1].truncated:
                    break
        finally:
            await env.close()
        return run_id, out

    run_id, out = asyncio.run(main())
    assert_no_leftovers(run_id)
    assert len(out) == len(OPERATOR)
    early = out[0].observation
    assert early.is_error and "kv3 is not in the cluster yet" in early.content
    assert "## Ticket 2 of 4: capacity" in out[2].observation.content
    peers_new = out[3].observation.content
    assert "kv1=" in peers_new and "kv4=" in peers_new and "[exit code 0]" in peers_new
    assert "not running" in out[4].observation.content  # registered, not started
    assert "started and listens on port 8080" in out[5].observation.content
    assert "started and listens on port 8080" in out[6].observation.content
    assert "kv3=" not in out[7].observation.content  # an old host keeps its contract
    phase = out[8].info["phase"]
    assert phase["name"] == "capacity"
    assert phase["breakdown"] == {
        "grown": 1.0, "contract": 1.0, "app": 1.0, "resolves": 1.0, "serving": 1.0, "role": 1.0
    }  # fmt: skip
    # the incidents of the fault schedules: a runaway log, a damaged data directory
    disk, restore = out[10].info["phase"], out[14].info["phase"]
    assert "[exit code 0]" in out[12].observation.content
    assert disk["name"] == "disk" and disk["breakdown"] == {"applied": 1.0, "freed": 1.0}
    assert restore["name"] == "restore"
    assert restore["breakdown"] == {"damaged": 1.0, "back": 1.0, "restored": 1.0}
    last = out[-1]
    assert last.terminated
    history = History.read_jsonl(last.info["grade"].history_path)
    runaway = [e for e in history.faults if e.fault == "runaway-log"]
    assert [e.action.value for e in runaway] == ["apply", "heal"]
    healed = runaway[1].detail
    assert healed["path"] == "/srv/data/store/debug.log" and healed["stopped"] == "disk-full"
    assert 0 < healed["bytes_written"] <= 4 << 20
    damaged = [e for e in history.faults if e.fault == "damaged-data"]
    assert [(e.action.value, e.targets) for e in damaged] == [
        ("apply", ("kv2",)), ("heal", ("kv2",))
    ]  # fmt: skip
    (added,) = history.meta["hosts_added"]
    assert added["phase"] == "capacity" and added["role"] == "kv" and not added["started"]
    assert list(added["hosts"]) == ["kv3", "kv4"]
    cap = history.meta["phases"][1]
    assert cap["added_hosts"] == added["hosts"] and added["time"] <= cap["opened"]
    # clients = true: the clients send to the new hosts once the capacity phase is graded
    (retarget,) = history.meta["client_targets"]
    assert retarget["phase"] == "capacity" and retarget["time"] >= cap["ended"]
    assert retarget["hosts"] == ["kv1", "kv2", "kv3", "kv4"]
    ops = history.operations()
    new_hosts = [op for op in ops if op.node in ("kv3", "kv4")]
    assert new_hosts and min(op.invoke for op in new_hosts) >= retarget["time"]
    assert {op.node for op in ops if op.invoke > retarget["time"]} == set(retarget["hosts"])
    assert sum(op.ok for op in new_hosts) > len(new_hosts) / 2  # they were started


@needs_root
@pytest.mark.timeout(180)
def test_added_hosts_can_start_with_the_service_running(tmp_path: Path) -> None:
    task = _edited(tmp_path, TASK, GROW, 'add_hosts = { role = "kv", count = 1, start = true }')
    grader = task / "grader.py"
    grader.write_text(
        grader.read_text() + "\n\nasync def grade_capacity(ctx):  # noqa: F811\n"
        "    return float(await _answers(ctx, 'kv3'))\n"
    )
    env = make(str(task), artifacts_dir=str(tmp_path / "art"))

    async def main() -> tuple[str, float]:
        await env.reset(seed=2)
        assert env.live is not None and env.live.cluster is not None
        run_id = env.live.cluster.run_id
        try:
            await env.step(ToolCall("end_phase", {"summary": "x"}))
            r = await env.step(ToolCall("end_phase", {"summary": "x"}))
        finally:
            await env.close()
        return run_id, r.info["phase"]["reward"]

    run_id, reward = asyncio.run(main())
    assert reward == 1.0
    assert_no_leftovers(run_id)


def test_the_restore_grade_is_zero_when_the_crash_damaged_nothing() -> None:
    """A damage that matched nothing (or failed: no ``damaged`` list) grades 0, not an
    error of the grader."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("live_grow_grader", TASK / "grader.py")
    assert spec is not None and spec.loader is not None
    grader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grader)

    class Ctx:
        def __init__(self, detail: dict[str, object]) -> None:
            self.detail = detail

        def faults(self) -> list[dict[str, object]]:
            return [{"fault": "damaged-data", "action": "apply", "detail": self.detail}]

        async def request(self, host: str, path: str) -> tuple[int, bytes]:
            return 200, (host.encode() if path == "/health" else b"100")

    for detail in ({"damaged": [], "unmatched": ["store/records.log"]}, {"error": "failed"}):
        score = asyncio.run(grader.grade_restore(Ctx(detail)))
        assert score.breakdown["damaged"] == 0.0 and score.breakdown["restored"] == 1.0
    ok = {"damaged": [{"path": "/srv/data/store/records.log", "kept": 5, "size": 10}]}
    assert asyncio.run(grader.grade_restore(Ctx(ok))).breakdown["damaged"] == 1.0
