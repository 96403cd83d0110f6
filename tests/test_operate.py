"""Live episodes (``mode = "operate"``): the test task ``tests/tasks/live-config`` (a
greeter on two production hosts; phase 1 changes its greeting on the live system, phase
2 is a crash that leaves one host's service down) played by scripted operators through
the Env, the Gymnasium adapter and verifiers; the spec's checks; the reward's parts; and
cleanup on close, a grader failure, cancellation and Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, assert_no_leftovers, needs_root

from infragym import ConfigError
from infragym.env import Env, EpisodeError, StepResult, ToolCall, make
from infragym.grading import episode_reward, service_level
from infragym.history import History, Operation, OpType
from infragym.tasks import load_task, validate_task

TASK = Path(__file__).parent / "tasks" / "live-config"
SED = 'sed -i \'s/^greeting = .*/greeting = bonjour/\' "$CONF" && cat "$CONF"'

# a careful operator: changes each host's configuration and restarts them one at a time,
# watches the dashboard, then starts the service wherever the incident left it down
ROBUST: list[ToolCall] = [
    ToolCall("host_bash", {"host": "n1", "command": SED}),
    ToolCall("service", {"host": "n1", "action": "restart"}),
    ToolCall("host_bash", {"host": "n2", "command": SED}),
    ToolCall("service", {"host": "n2", "action": "restart"}),
    ToolCall("host_bash", {"host": "n1", "command": "sleep 1"}),
    ToolCall("metrics", {"minutes": 1}),
    ToolCall("end_phase", {"summary": "the greeting is bonjour on n1 and n2, in greeter.conf"}),
    ToolCall("host_bash", {"host": "n1", "command": "sleep 2"}),  # the page comes in
    ToolCall("metrics", {"minutes": 1}),
    ToolCall("service", {"host": "n1", "action": "start"}),
    ToolCall("service", {"host": "n2", "action": "start"}),
    ToolCall("host_bash", {"host": "n2", "command": "sleep 1"}),
    ToolCall("end_phase", {"summary": "the crashed host's service is started again"}),
]
NOOP: list[ToolCall] = [ToolCall("end_phase", {"summary": "done"})] * 2


async def play(env: Env, calls: list[ToolCall], seed: int) -> list[StepResult]:
    await env.reset(seed=seed)
    out = []
    try:
        for call in calls:
            r = await env.step(call)
            out.append(r)
            if r.terminated or r.truncated:
                break
    finally:
        await env.close()
    return out


def assert_history_spans_every_phase(history_path: str) -> None:
    """The one history of the episode holds client requests inside every phase."""
    h = History.read_jsonl(history_path)
    phases = h.meta["phases"]
    assert [p["name"] for p in phases] == ["greeting", "incident"]
    ops = h.operations()
    for p in phases:
        inside = [op for op in ops if p["opened"] <= op.invoke <= p["ended"]]
        assert inside, f"no request recorded during phase {p['name']}"
        assert any(op.ok for op in inside)
    assert phases[0]["ended"] <= phases[1]["opened"]


# -- the spec ----------------------------------------------------------------------------


def test_the_test_task_is_valid_and_declares_its_phases() -> None:
    assert validate_task(TASK) == []
    task = load_task(TASK)
    assert task.spec.mode == "operate"
    op = task.spec.operate
    assert op is not None and [p.name for p in op.phases] == ["greeting", "incident"]
    assert op.phases[1].faults[0].params == {"restart": False}


def _variant(tmp_path: Path, edit: Any) -> Path:
    dest = tmp_path / "live-config"
    shutil.copytree(TASK, dest)
    edit(dest)
    return dest


def _toml_variant(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the test task whose task.toml has ``old`` replaced by ``new`` (once)."""

    def edit(d: Path) -> None:
        text = (d / "task.toml").read_text()
        assert old in text
        (d / "task.toml").write_text(text.replace(old, new, 1))

    return _variant(tmp_path, edit)


def test_bad_live_specs_are_refused_with_every_problem(tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        text = (d / "task.toml").read_text()
        text = text.replace('ticket = "tickets/incident.md"', 'ticket = "../../etc/passwd"')
        text = text.replace("rate = 20", "rate = 5000")
        text = text.replace('name = "incident"', 'name = "Incident!"')
        (d / "task.toml").write_text(text)
        (d / "grader.py").write_text(
            (d / "grader.py").read_text().replace("async def audit(", "async def other(")
        )

    problems = validate_task(_variant(tmp_path, edit))
    joined = "\n".join(problems)
    assert "operate.rate must be a number in [0.5, 100]" in joined
    assert "phases[1].name 'Incident!'" in joined
    assert "grader.py must define `async def audit(ctx)`" in joined
    with pytest.raises(ConfigError, match="mode must be"):
        load_task(_toml_variant(tmp_path / "b", 'mode = "operate"', 'mode = "live"'))


def test_a_ticket_outside_the_task_and_a_missing_phase_grader_are_refused(tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        text = (d / "task.toml").read_text()
        (d / "task.toml").write_text(text.replace("tickets/incident.md", "../secret.md"))
        (tmp_path / "secret.md").write_text("x")
        (d / "grader.py").write_text(
            (d / "grader.py").read_text().replace("grade_incident(", "grade_other(")
        )

    problems = validate_task(_variant(tmp_path, edit))
    assert any(
        "phase incident: its ticket ../secret.md is not a file of the task" in p for p in problems
    ), problems
    assert any("`async def grade_incident(ctx)`" in p for p in problems), problems


def test_a_phases_incident_schedule_is_a_pure_function_of_the_seed() -> None:
    from infragym.env._live import phase_schedule

    task = load_task(TASK)
    ph = task.spec.operate.phases[1]  # type: ignore[union-attr]
    draws = {s: phase_schedule(task, ph, s, ["n1", "n2"]).to_json() for s in range(1, 9)}
    assert draws[3] == phase_schedule(task, ph, 3, ["n1", "n2"]).to_json()
    assert {d[0]["targets"][0] for d in draws.values()} == {"n1", "n2"}  # "any" host
    assert all(
        0.5 <= d[0]["at"] <= 1.5 and d[0]["params"] == {"restart": False} for d in draws.values()
    )


# -- the reward's parts ------------------------------------------------------------------


def _op(i: int, ok: bool, latency: float, node: str = "n1") -> Operation:
    return Operation(
        i,
        "request",
        "/health",
        None,
        200 if ok else None,
        OpType.OK if ok else OpType.FAIL,
        float(i),
        float(i) + latency,
        float(i),
        node,
    )


def test_the_service_level_spends_the_error_budget_on_failed_and_slow_requests() -> None:
    ops = [_op(i, True, 0.01) for i in range(90)]
    ops += [_op(100 + i, False, 0.01) for i in range(5)]  # failed
    ops += [_op(200 + i, True, 0.9) for i in range(5)]  # slower than 500 ms
    sl = service_level(ops, slo=0.8, latency_ms=500)
    assert (sl.total, sl.bad) == (100, 10)
    assert sl.score == pytest.approx(0.5)  # 10 % bad of a 20 % budget: half of it left
    assert service_level(ops, slo=0.95, latency_ms=500).score == 0.0  # budget overspent
    assert service_level([], slo=0.9, latency_ms=500).score == 0.0  # nothing served
    # an unfinished request older than the objective is bad; a younger one is left out
    hung = Operation(1, "request", "/", None, None, OpType.INFO, 10.0, math.inf, 10.0, "n1")
    assert service_level([hung], 0.9, 500, end=12.0).bad == 1
    assert service_level([hung], 0.9, 500, end=10.1).total == 0


def test_with_a_fixed_allowance_idling_buys_no_error_budget() -> None:
    outage = [_op(i, False, 0.01) for i in range(10)]  # 10 bad of 50
    outage += [_op(10 + i, True, 0.01) for i in range(40)]
    idle = [_op(100 + i, True, 0.01) for i in range(1000)]  # a long quiet stretch after
    plain = service_level(outage + idle, slo=0.8, latency_ms=500)
    assert plain.score == pytest.approx(1 - (10 / 1050) / 0.2)  # idling diluted the outage
    fixed = service_level(outage + idle, 0.8, 500, allowance=40)
    assert fixed.score == pytest.approx(0.75)  # 10 bad of 40 allowed, idle or not
    assert service_level(outage, 0.8, 500, allowance=40).score == fixed.score
    assert fixed.availability == pytest.approx(1 - 10 / 1050)  # the plain share, shown
    assert service_level(outage * 5, 0.8, 500, allowance=40).score == 0.0  # spent


def test_the_episode_reward_is_weighted_phases_service_and_audit() -> None:
    w = {"phases": 0.6, "service": 0.3, "audit": 0.1}
    ep = episode_reward({"a": 1.0, "b": 0.5}, {"a": 1.0, "b": 3.0}, 0.5, 1.0, w)
    assert ep.contributions == {"a": pytest.approx(0.15), "b": pytest.approx(0.225)}
    assert ep.reward == pytest.approx(0.15 + 0.225 + 0.15 + 0.1)
    assert ep.breakdown() == {"phase:a": 1.0, "phase:b": 0.5, "service": 0.5, "audit": 1.0}
    # a phase never reached scores 0
    assert episode_reward({"a": 1.0}, {"a": 1.0, "b": 1.0}, 1.0, 1.0, w).phases["b"] == 0.0


# -- episodes ----------------------------------------------------------------------------


@needs_root
@pytest.mark.timeout(240)
def test_phase_rewards_arrive_at_their_steps_and_add_up_to_the_episode_reward(
    tmp_path: Path,
) -> None:
    env = make(str(TASK), artifacts_dir=str(tmp_path / "art"))
    robust = asyncio.run(play(env, ROBUST, seed=1))
    assert len(robust) == len(ROBUST)
    ends = [i for i, r in enumerate(robust) if "phase" in r.info]
    assert ends == [6, 12]  # the two end_phase calls
    first, last = robust[6], robust[12]
    assert [r.reward for i, r in enumerate(robust) if i not in ends] == [0.0] * 11
    p1 = first.info["phase"]
    assert p1["name"] == "greeting" and p1["end_reason"] == "end_phase"
    assert p1["breakdown"]["served"] == 1.0 and p1["breakdown"]["persisted"] == 1.0
    assert first.reward == pytest.approx(p1["contribution"]) and first.reward > 0.2
    assert not first.terminated and "## Ticket 2 of 2: incident" in first.observation.content
    p2 = last.info["phase"]
    assert p2["name"] == "incident" and p2["breakdown"]["restored"] == 1.0
    assert last.terminated
    grade = last.info["grade"]
    episode = last.info["episode"]
    assert set(grade.breakdown) == {"phase:greeting", "phase:incident", "service", "audit"}
    assert episode["audit"]["reward"] == 1.0
    assert episode["service"]["total"] > 0
    # the step rewards of an episode add up to its reward
    assert sum(r.reward for r in robust) == pytest.approx(grade.reward)
    assert grade.reward > 0.7, grade.notes  # restarts and the crash spend some budget
    assert env.phase_rewards == [
        {
            "step": 7,
            "phase": "greeting",
            "reward": p1["reward"],
            "contribution": p1["contribution"],
            "step_reward": first.reward,
        },
        {
            "step": 13,
            "phase": "incident",
            "reward": p2["reward"],
            "contribution": p2["contribution"],
            "step_reward": last.reward,
        },
    ]
    assert_history_spans_every_phase(grade.history_path)
    # the crash fired in phase 2 and the nemesis recorded it
    assert [(e["fault"], e["action"]) for e in grade.timeline] == [
        ("crash", "apply"),
        ("crash", "heal"),
    ]

    noop = asyncio.run(play(env, NOOP, seed=1))
    assert [r.info["phase"]["name"] for r in noop] == ["greeting", "incident"]
    assert noop[0].info["phase"]["breakdown"]["served"] == 0.0
    assert noop[1].info["phase"]["reward"] == 0.0  # the crashed host is still down
    assert noop[1].info["episode"]["audit"]["reward"] < 0.5
    # the handover: the clients went on after the shift, so the host left down spent the
    # error budget (ending every phase at once does not end the outage's cost)
    assert noop[1].info["episode"]["service"]["score"] < 0.5
    assert noop[1].info["grade"].reward < grade.reward - 0.4


@needs_root
@pytest.mark.timeout(120)
def test_submit_ends_the_shift_and_unopened_tickets_score_nothing(tmp_path: Path) -> None:
    env = make(str(TASK), artifacts_dir=str(tmp_path / "art"))
    (r,) = asyncio.run(play(env, [ToolCall("submit", {})], seed=2))
    assert r.terminated and r.info["end_reason"] == "submit"
    assert r.info["phase"]["name"] == "greeting"
    assert r.info["episode"]["phases"].keys() == {"greeting"}
    assert r.info["grade"].breakdown["phase:incident"] == 0.0
    assert any("phase incident: not reached, 0" in n for n in r.info["grade"].notes)
    assert r.reward == pytest.approx(r.info["grade"].reward)
    # the service level and the audit count in proportion to what the tickets earned:
    # the greeting (half the weight) as graded, the incident (not reached) nothing
    grade, episode = r.info["grade"], r.info["episode"]
    earned = grade.breakdown["phase:greeting"] / 2
    assert earned < 1.0 and any("count in that proportion" in n for n in grade.notes)
    assert grade.breakdown["service"] == pytest.approx(episode["service"]["score"] * earned)
    assert grade.breakdown["audit"] == pytest.approx(episode["audit"]["reward"] * earned)


UNKNOWN_INCIDENT = """

async def grade_incident(ctx):  # noqa: F811
    return PhaseScore(0.0, {}, ["unknown: no judge"], unknown=True)
"""


@needs_root
@pytest.mark.timeout(120)
def test_a_phase_graded_unknown_is_left_out_of_the_reward_with_its_weight(
    tmp_path: Path,
) -> None:
    task_dir = _variant(
        tmp_path,
        lambda d: (d / "grader.py").write_text((d / "grader.py").read_text() + UNKNOWN_INCIDENT),
    )
    env = make(str(task_dir), artifacts_dir=str(tmp_path / "art"))
    out = asyncio.run(play(env, ROBUST, seed=1))
    first, last = out[6], out[-1]
    assert last.terminated and last.info["phase"]["unknown"] is True
    assert last.info["phase"]["contribution"] == 0.0
    grade = last.info["grade"]
    assert "phase:incident" not in grade.breakdown
    assert any("phase incident: unknown, left out of the reward" in n for n in grade.notes)
    # the greeting alone carries the phases' weight (0.6 of 1.0)
    b = grade.breakdown
    want = 0.6 * b["phase:greeting"] + 0.3 * b["service"] + 0.1 * b["audit"]
    assert grade.reward == pytest.approx(want)
    assert sum(r.reward for r in out) == pytest.approx(grade.reward)
    assert first.info["phase"]["unknown"] is False


AUDIT_SEES_PROCESSES = """

async def audit(ctx):  # noqa: F811
    from infragym.nemesis._drift import process_title

    titles = [process_title(p) for h in ctx.cluster.hosts for p in h.pids()]
    left = [t for t in titles if "sleep 100" in t]
    return PhaseScore(0.0 if left else 1.0, {}, [f"left: {left}"])
"""


@needs_root
@pytest.mark.timeout(120)
def test_the_operators_background_processes_end_with_the_ticket_before_it_is_graded(
    tmp_path: Path,
) -> None:
    """Nothing of the operator's may stand in for the service or babysit it while the
    grader looks: what host_bash started in the background (and what that forked into a
    session of its own) is gone when the ticket is graded and when the audit runs."""
    task_dir = _variant(
        tmp_path,
        lambda d: (d / "grader.py").write_text(
            (d / "grader.py").read_text() + AUDIT_SEES_PROCESSES
        ),
    )
    env = make(str(task_dir), artifacts_dir=str(tmp_path / "art"))
    started = ToolCall(
        "host_bash",
        {
            "host": "n1",
            "background": True,
            # a forked session of its own, and a process that ignores SIGTERM
            "command": "setsid sleep 1001 & trap '' TERM; exec sleep 1002",
        },
    )
    out = asyncio.run(play(env, [started, ToolCall("submit", {})], seed=1))
    assert "started bg1 on n1" in out[0].observation.content
    assert "until this ticket closes" in out[0].observation.content
    assert out[-1].info["episode"]["audit"]["notes"] == ["left: []"]


@needs_root
@pytest.mark.timeout(120)
def test_the_phase_step_limit_ends_a_phase_and_tools_report_mistakes(tmp_path: Path) -> None:
    task_dir = _toml_variant(tmp_path, "max_steps = 15", "max_steps = 3")
    env = make(str(task_dir), artifacts_dir=str(tmp_path / "art"))
    calls = [
        ToolCall("logs", {"host": "n1", "name": "nope"}),
        ToolCall("service", {"host": "n3", "action": "status"}),
        ToolCall("metrics", {"minutes": 1}),
        ToolCall("submit", {}),
    ]
    out = asyncio.run(play(env, calls, seed=1))
    assert out[0].observation.is_error and "its logs: greeter" in out[0].observation.content
    assert (
        out[1].observation.is_error and "host must be one of n1, n2" in out[1].observation.content
    )
    assert "n1" in out[2].observation.content and "availability" in out[2].observation.content
    assert out[2].info["phase"]["end_reason"] == "phase_limit"
    assert "## Ticket 2 of 2" in out[2].observation.content
    assert out[3].terminated


GRADER_BUG = """
async def grade_greeting(ctx):
    raise RuntimeError("grader bug")
"""


@needs_root
@pytest.mark.timeout(120)
def test_a_grader_failure_ends_the_episode_with_no_reward_and_removes_everything(
    tmp_path: Path,
) -> None:
    task_dir = _variant(
        tmp_path, lambda d: (d / "grader.py").write_text((d / "grader.py").read_text() + GRADER_BUG)
    )
    env = make(str(task_dir), artifacts_dir=str(tmp_path / "art"))

    async def main() -> str:
        await env.reset(seed=1)
        assert env.live is not None and env.live.cluster is not None
        run_id = env.live.cluster.run_id
        with pytest.raises(EpisodeError, match="grader bug"):
            await env.step(ToolCall("end_phase", {"summary": "x"}))
        assert env.live is None
        return run_id

    assert_no_leftovers(asyncio.run(main()))


@needs_root
@pytest.mark.timeout(120)
def test_a_cancelled_step_with_a_fault_active_removes_everything(tmp_path: Path) -> None:
    task_dir = _toml_variant(
        tmp_path,
        'kind = "crash", host = "any", at = [0.5, 1.5], params = { restart = false }',
        'kind = "pause", host = "n1", at = 0, duration = 600',
    )
    env = make(str(task_dir), artifacts_dir=str(tmp_path / "art"))

    async def main() -> str:
        await env.reset(seed=1)
        assert env.live is not None and env.live.cluster is not None
        run_id = env.live.cluster.run_id
        await env.step(ToolCall("end_phase", {"summary": "x"}))  # phase 2: n1 paused
        task = asyncio.create_task(
            env.step(ToolCall("host_bash", {"host": "n2", "command": "sleep 60"}))
        )
        await asyncio.sleep(1.5)
        assert env.live.history.faults[-1].action.value == "apply"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert env.live is None
        return run_id

    assert_no_leftovers(asyncio.run(main()))


CTRL_C = """
import asyncio, sys
from pathlib import Path
from infragym.env import ToolCall, make

async def main():
    env = make(sys.argv[1], artifacts_dir=sys.argv[3])
    await env.reset(seed=1)
    Path(sys.argv[2]).write_text(env.live.cluster.run_id)
    await env.step(ToolCall("host_bash", {"host": "n1", "command": "sleep 60"}))

asyncio.run(main())
"""


@pytest.mark.skipif(not ROOT, reason="needs root")
@pytest.mark.timeout(120)
def test_ctrl_c_during_a_live_episode_removes_everything(tmp_path: Path) -> None:
    mark = tmp_path / "run-id"
    log = tmp_path / "out.txt"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", CTRL_C, str(TASK), str(mark), str(tmp_path / "art")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")},
        )
    deadline = time.monotonic() + 60
    while not mark.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the episode did not start"
        time.sleep(0.1)
    time.sleep(1.0)  # the workload runs and the agent's command sleeps
    os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the episode did not stop within 30 s of Ctrl-C")
    assert proc.returncode in (130, -signal.SIGINT, 1), (proc.returncode, log.read_text())
    assert "KeyboardInterrupt" in log.read_text() or proc.returncode != 1
    assert_no_leftovers(mark.read_text())


# -- the trainers' interfaces ------------------------------------------------------------


@needs_root
@pytest.mark.timeout(180)
def test_the_gymnasium_adapter_returns_each_phase_reward_at_its_step(tmp_path: Path) -> None:
    from infragym.gym import InfraGymEnv

    env = InfraGymEnv(str(TASK), artifacts_dir=str(tmp_path / "art"))
    try:
        text, info = env.reset(seed=3)
        assert "## Ticket 1 of 2: greeting" in text
        assert {t["function"]["name"] for t in info["tools"]} == {
            "host_bash",
            "service",
            "logs",
            "metrics",
            "end_phase",
            "submit",
        }
        rewards, infos = [], []
        for call in ROBUST:
            action = json.dumps({"name": call.name, "arguments": dict(call.arguments)})  # type: ignore[arg-type]
            _, reward, terminated, truncated, step_info = env.step(action)
            rewards.append(reward)
            infos.append(step_info)
            if terminated or truncated:
                break
    finally:
        env.close()
    assert len(rewards) == len(ROBUST) and terminated
    assert [i for i, r in enumerate(rewards) if r > 0] == [6, 12]
    assert infos[6]["phase"]["name"] == "greeting" and infos[6]["phase_index"] == 0
    assert infos[12]["phase"]["name"] == "incident" and infos[12]["phase_index"] == 1
    assert json.dumps(infos[12]["episode"])  # plain JSON types
    assert sum(rewards) == pytest.approx(infos[12]["grade"]["reward"])
    assert_history_spans_every_phase(infos[12]["grade"]["history_path"])


@needs_root
@pytest.mark.timeout(240)
def test_verifiers_rollouts_carry_the_phase_rewards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vf = pytest.importorskip("verifiers.v1", reason="needs infragym[verifiers]")
    from infragym.integrations.verifiers import make_env as vf_env
    from infragym.integrations.verifiers import run_group
    from infragym.testing import Reply, ScriptedModelServer, by_turn

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    env = vf_env(tasks=[str(TASK)], seeds=[1], artifacts_dir=str(tmp_path / "art"))
    script = [Reply.tool(c.name, dict(c.arguments)) for c in ROBUST]  # type: ignore[arg-type]

    async def main() -> list[Any]:
        async with ScriptedModelServer(then=by_turn(script)) as server:
            monkeypatch.setenv("INFRAGYM_TEST_MODEL_KEY", server.api_key or "")
            return await asyncio.wait_for(
                run_group(
                    env,
                    next(iter(env.taskset)),
                    1,
                    model="test-model",
                    base_url=server.url,
                    api_key_var="INFRAGYM_TEST_MODEL_KEY",
                ),
                200,
            )

    (episode,) = asyncio.run(main())
    assert isinstance(episode, vf.Episode) and episode.ok, episode.errors
    trace = episode.traces[0]
    state = trace.state
    assert [(p["phase"], p["step"]) for p in state.phase_rewards] == [
        ("greeting", 7),
        ("incident", 13),
    ]
    assert trace.metrics["infragym/phase/greeting"] == state.phase_rewards[0]["reward"] > 0.5
    assert trace.metrics["infragym/phase/incident/step"] == 13
    assert trace.reward == pytest.approx(sum(p["step_reward"] for p in state.phase_rewards))
    assert_history_spans_every_phase(
        max((tmp_path / "art").glob("*/history.jsonl"), key=lambda p: p.stat().st_mtime).as_posix()
    )


@needs_root
@pytest.mark.timeout(180)
def test_an_openenv_client_gets_each_phase_reward_at_its_step(tmp_path: Path) -> None:
    core = pytest.importorskip("openenv.core", reason="needs the openenv extra (.venv-openenv)")
    from serving import runs_of, server, wait_gone

    with server(tmp_path, str(TASK)) as (proc, url):
        env = core.GenericEnvClient(base_url=url, message_timeout_s=120).sync()
        with env:
            first = env.reset(task="live-config", seed=1)
            assert "## Ticket 1 of 2: greeting" in first.observation["instructions"]
            runs = runs_of(proc.pid)
            assert runs, "the episode made no cluster on the server"
            results = []
            for call in ROBUST:
                r = env.step({"name": call.name, "arguments": dict(call.arguments)})  # type: ignore[arg-type]
                results.append(r)
                if r.done:
                    break
            wait_gone(proc.pid, runs)
    assert len(results) == len(ROBUST) and results[-1].done
    assert [i for i, r in enumerate(results) if r.reward] == [6, 12]
    assert results[6].metadata["phase"]["name"] == "greeting"
    assert results[12].metadata["phase"]["name"] == "incident"
    grade = results[12].metadata["grade"]
    assert sum(r.reward for r in results) == pytest.approx(grade["reward"])
    assert_history_spans_every_phase(grade["history_path"])
