"""The Gymnasium adapter: check_env, text spaces that hold every observation, bad actions
as observations, seeding, cleanup, and the same fault schedule and reward for the same seed
and actions on kv-replicated.

Episodes run the tiny task with its workspace grader (grading takes milliseconds) except
the one determinism test on kv-replicated, which grades three times (about 80 s).
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import pytest
from conftest import assert_no_leftovers, needs_root
from gymnasium.spaces import Text
from gymnasium.utils.env_checker import check_env
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym import ConfigError
from infragym.agent import reference_agent
from infragym.env import EpisodeError, ToolCall
from infragym.gym import CHARSET, InfraGymEnv, env_id, make, parse_action
from infragym.gym._spaces import fit, to_charset
from infragym.tasks import find_task

pytestmark = pytest.mark.usefixtures("no_runs_left")


def act(name: str, **arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def run_ids(env: InfraGymEnv) -> list[str]:
    e = env.infragym_env
    ids = [e.workstation.run_id] if e.workstation else []
    return ids + ([e.dev_cluster.run_id] if e.dev_cluster else [])



@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    return tiny_task(tmp_path / "tasks", grader=WORKSPACE_GRADER, max_steps=6)


@pytest.fixture
def gym_env(task_dir: Path, tmp_path: Path) -> Iterator[InfraGymEnv]:
    # a small write limit keeps the action space's random samples short (see test_spaces)
    env = make(str(task_dir), artifacts_dir=tmp_path / "artifacts", max_write_bytes=65536)
    try:
        yield env
    finally:
        env.close()


# -- without episodes ----------------------------------------------------------------------


def test_importing_infragym_does_not_load_gymnasium() -> None:
    code = "import sys, infragym, infragym.env; print('gymnasium' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_without_gymnasium_the_import_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['gymnasium'] = None\n"  # what an uninstalled package gives
        "from infragym import ConfigError\n"
        "try:\n    import infragym.gym\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'infragym[gym]'" in out.stdout, out


def test_spaces_and_spec(task_dir: Path) -> None:
    env = make(str(task_dir))
    assert isinstance(env, gymnasium.Env)
    obs_space, act_space = env.observation_space, env.action_space
    assert isinstance(obs_space, Text) and isinstance(act_space, Text)
    assert obs_space.character_set == act_space.character_set == CHARSET
    assert len(CHARSET) == 63426
    # observations: the longest read with every byte shown as \xNN, plus room; actions: the
    # largest write with every character escaped in two, plus room
    assert (obs_space.min_length, obs_space.max_length) == (0, 4 * 65536 + 65536)
    assert (act_space.min_length, act_space.max_length) == (1, 2 * (4 << 20) + 65536)
    assert env.spec is not None and env.spec.id == "infragym/tiny-v1"
    assert env_id(env.infragym_env.task) == env.spec.id
    assert env.spec.kwargs == {"task": str(task_dir)} and not env.spec.nondeterministic
    assert env.metadata["render_modes"] == ["ansi"] and env.render_mode is None
    # each env has its own generator; the charset index is shared, not rebuilt
    assert make(str(task_dir)).action_space.np_random is not act_space.np_random
    env.close()
    env.close()
    with pytest.raises(ConfigError, match="render_mode"):
        make(str(task_dir), render_mode="human")
    with pytest.raises(ConfigError, match="unknown env option"):
        make(str(task_dir), max_stepz=3)


def test_builtin_tasks_are_registered_with_gymnasium() -> None:
    env = gymnasium.make("infragym/kv-replicated-v1")
    assert isinstance(env.unwrapped, InfraGymEnv)
    assert env.unwrapped.infragym_env.task.name == "kv-replicated"
    env.close()


@needs_root
def test_an_episode_through_gymnasium_make(gym_env: InfraGymEnv) -> None:
    """gymnasium.make(spec) wraps the env in its passive checker and order enforcer: an
    episode through them raises no warning (pytest runs with -W error)."""
    assert gym_env.spec is not None
    env = gymnasium.make(gym_env.spec)
    try:
        obs, info = env.reset(seed=1)
        assert obs.startswith("Write 42")
        assert env.step("not json")[0].startswith("error: the action is not JSON")
        env.step(act("write_file", path="answer.txt", content="42"))
        _, reward, terminated, _, info = env.step(act("submit"))
        assert (reward, terminated, info["grade"]["seed"]) == (1.0, True, 1)
    finally:
        env.close()


def test_every_string_maps_into_the_charset() -> None:
    everything = "".join(map(chr, range(0x110000)))  # surrogates, controls, astral
    text = to_charset(everything)
    assert set(text) <= CHARSET
    kept = "".join(c for c in everything if c in CHARSET)
    assert to_charset(kept) == kept  # what is in the charset is left alone
    assert to_charset("\0\x1b\x7f\x85\ud800é😀") == "\\x00\\x1b\\x7f\\x85\\ud800é\\U0001f600"
    assert fit("x" * 1000, 1000) == "x" * 1000
    cut = fit("a" * 600 + "b" * 600, 1000)
    assert len(cut) <= 1000 and cut.startswith("a") and cut.endswith("b") and "cut" in cut


def test_parse_action() -> None:
    assert parse_action(act("bash", command="ls")) == ToolCall("bash", {"command": "ls"})
    openai = {"id": "c1", "type": "function",
              "function": {"name": "read_file", "arguments": '{"path": "a"}'}}  # fmt: skip
    assert parse_action(json.dumps(openai)) == ToolCall("read_file", '{"path": "a"}', "c1")
    not_json = "the action is not JSON (Expecting value: line 1 column 1 (char 0))"
    assert parse_action("ls -la") == not_json
    assert str(parse_action("[" * 100_000)).startswith("the action is not JSON (maximum")
    assert "one tool call per step" in str(parse_action(f"[{act('bash', command='ls')}]"))
    assert parse_action("42") == "the action is a JSON int, not an object"
    assert "names no tool" in str(parse_action('{"arguments": {}}'))
    with pytest.raises(TypeError, match=r"json\.dumps"):
        parse_action({"name": "bash"})  # type: ignore[arg-type]


def test_step_before_reset_and_reset_options(gym_env: InfraGymEnv) -> None:
    with pytest.raises(EpisodeError, match="call reset"):
        gym_env.step(act("bash", command="true"))
    with pytest.raises(ConfigError, match="no options"):
        gym_env.reset(options={"level": 3})


# -- episodes ------------------------------------------------------------------------------


@needs_root
def test_check_env_passes(gym_env: InfraGymEnv) -> None:
    """Every check of gymnasium's env_checker, render and close checks included, with
    warnings as errors (pytest runs with -W error): no deviation to declare. It resets
    about a dozen episodes and steps random Text samples, which are not JSON."""
    check_env(gym_env)


@needs_root
def test_an_episode(gym_env: InfraGymEnv) -> None:
    obs, info = gym_env.reset(seed=11)
    ids = run_ids(gym_env)
    assert obs.startswith("Write 42 to answer.txt") and obs in gym_env.observation_space
    assert '{"name": "bash", "description": ' in obs  # a text policy reads the schemas
    assert "after 6 actions" in obs
    assert info["seed"] == 11 and info["task"] == "tiny" and info["dev_hosts"] == ["n1"]
    assert [t["function"]["name"] for t in info["tools"]] == [
        "bash", "read_file", "write_file", "host_bash", "submit"]  # fmt: skip
    assert info["limits"] == {"max_steps": 6, "agent_wall_s": 300.0, "command_timeout_s": 10.0}

    obs, reward, terminated, truncated, info = gym_env.step(act("bash", command="echo hi"))
    assert (obs, reward, terminated, truncated) == ("hi\n[exit code 0]", 0.0, False, False)
    assert info == {"step": 1, "tool": "bash", "is_error": False, "exit_code": 0,
                    "timed_out": False, "output_bytes": 3}  # fmt: skip
    obs, reward, *_ = gym_env.step(act("write_file", path="answer.txt", content="42\n"))
    assert obs == "wrote 3 bytes to /workspace/answer.txt" and reward == 0.0
    openai_submit = {"id": "call_9", "type": "function",
                     "function": {"name": "submit", "arguments": "{}"}}  # fmt: skip
    obs, reward, terminated, truncated, info = gym_env.step(json.dumps(openai_submit))
    assert (reward, terminated, truncated, info["end_reason"]) == (1.0, True, False, "submit")
    grade = info["grade"]
    assert isinstance(grade, dict) and grade["reward"] == 1.0 and grade["seed"] == 11
    assert json.loads(json.dumps(grade)) == grade  # plain JSON types
    for run_id in ids:
        assert_no_leftovers(run_id)  # the episode is torn down at its end
    with pytest.raises(EpisodeError, match="call reset"):
        gym_env.step(act("bash", command="true"))


@needs_root
def test_bad_actions_are_observations_and_count_as_steps(gym_env: InfraGymEnv) -> None:
    gym_env.reset(seed=1)
    hint = f"An action is one tool call as JSON, e.g. {act('bash', command='ls')}"
    cases = [
        ("ls -la", "error: the action is not JSON (Expecting value: line 1 column 1 (char 0))"
         f". {hint}", None),
        ('{"arguments": {}}', 'error: the action names no tool: it needs "name", a string. '
         f"{hint}", None),
        (act("rm_rf"), "error: there is no tool 'rm_rf'; the tools are bash, read_file, "
         "write_file, host_bash, submit", "rm_rf"),
        (json.dumps({"name": "bash", "arguments": "{not json"}),
         "error: the arguments of bash are not valid JSON: Expecting property name enclosed in "
         "double quotes: line 1 column 2 (char 1)", "bash"),
        (act("read_file", path="/etc/shadow"), None, "read_file"),
    ]  # fmt: skip
    for step, (action, expected, tool) in enumerate(cases, 1):
        obs, reward, terminated, truncated, info = gym_env.step(action)
        assert (reward, terminated, truncated) == (0.0, False, False), action
        assert info["step"] == step and info["tool"] == tool and info["is_error"], action
        assert obs.startswith("error: ") and obs in gym_env.observation_space
        if expected is not None:
            assert obs == expected
    # the sixth step is the last one (max_steps = 6): garbage too ends the episode, graded
    obs, reward, terminated, truncated, info = gym_env.step("}{")
    assert obs.startswith("error: the action is not JSON (Expecting value")
    assert (reward, terminated, truncated, info["end_reason"]) == (0.0, False, True, "max_steps")
    assert info["grade"]["reward"] == 0.0


@needs_root
def test_every_observation_is_in_the_observation_space(gym_env: InfraGymEnv) -> None:
    """Tool output is arbitrary bytes: binary, invalid UTF-8, controls, C1, astral, huge."""
    obs, _ = gym_env.reset(seed=2)
    assert obs in gym_env.observation_space
    script = (
        r"printf 'nul\0 esc\033[31m del\177 c1\302\205 bad\377\376 surrogate\355\240\200 "
        r"emoji\360\237\230\200 cjk\344\270\255 bidi\342\200\256 bom\357\273\277 ok\n'"
    )
    actions = [
        act("bash", command=script),
        act("bash", command=script + " > bin.dat; head -c 300000 /dev/urandom >> bin.dat"),
        act("read_file", path="bin.dat"),  # 64 KiB of random bytes, each maybe \xNN
        act("bash", command="head -c 100000 /dev/urandom"),  # cut in the middle
        act("bash", command=": > empty"),
    ]
    outs = [gym_env.step(a)[0] for a in actions]
    outs.append(gym_env.step(act("read_file", path="empty"))[0])
    for obs in outs:
        assert obs in gym_env.observation_space
    first = outs[0]
    assert first.startswith(r"nul esc\x1b[31m del\x7f c1\x85 bad\xff\xfe surrogate\xed\xa0\x80 ")
    assert r"emoji\U0001f600 cjk中 bidi" + "\u202e bom\ufeff ok" in first
    assert outs[-1] == ""  # an empty file: the space's min_length is 0
    assert gym_env.observation_space.contains(outs[2]) and len(outs[2]) > 65536


@needs_root
def test_seeds_follow_gymnasium(task_dir: Path, tmp_path: Path) -> None:
    """A seed is the infragym seed; without one the seed comes from np_random, so the
    episodes after a seeded reset repeat, and differ from those after another seed."""

    def seeds(first: int | None, n: int = 3) -> list[int]:
        with make(str(task_dir), artifacts_dir=tmp_path / "a") as env:
            got = [env.reset(seed=first)[1]["seed"]]
            got += [env.reset()[1]["seed"] for _ in range(n - 1)]
            return got

    a, b, c = seeds(5), seeds(5), seeds(6)
    assert a == b and a[0] == 5 and len(set(a)) == 3
    assert c[0] == 6 and c[1:] != a[1:]
    assert seeds(None) != seeds(None)  # no seed at all: from the OS, as gymnasium does
    with make(str(task_dir), artifacts_dir=tmp_path / "b") as env:
        env.reset(seed=5)
        env.reset()
        env.step(act("write_file", path="answer.txt", content="42"))
        info = env.step(act("submit"))[4]
        assert info["grade"]["seed"] == a[1]  # grading sees the seed the reset drew


@needs_root
def test_close_removes_everything_and_reset_starts_afresh(gym_env: InfraGymEnv) -> None:
    gym_env.reset(seed=3)
    gym_env.step(act("host_bash", host="n1", command="sleep 600", background=True))
    first = run_ids(gym_env)
    assert len(first) == 2
    gym_env.close()
    for run_id in first:
        assert_no_leftovers(run_id)
    gym_env.close()  # idempotent
    gym_env.reset(seed=3)  # after close, a new episode
    second = run_ids(gym_env)
    assert second and not set(second) & set(first)
    gym_env.reset(seed=4)  # a reset ends the running episode, ungraded
    for run_id in second:
        assert_no_leftovers(run_id)
    gym_env.close()
    with pytest.raises(EpisodeError, match="call reset"):
        gym_env.step(act("bash", command="true"))


@needs_root
def test_an_env_dropped_without_close_removes_its_episode(task_dir: Path, tmp_path: Path) -> None:
    env = make(str(task_dir), artifacts_dir=tmp_path / "a")
    env.reset(seed=3)
    env.step(act("host_bash", host="n1", command="sleep 600", background=True))
    runs = run_ids(env)
    assert len(runs) == 2
    del env
    gc.collect()
    for run_id in runs:
        assert_no_leftovers(run_id)


@needs_root
def test_render_ansi(task_dir: Path, tmp_path: Path) -> None:
    with make(str(task_dir), artifacts_dir=tmp_path / "a", render_mode="ansi") as env:
        assert env.render() == ""
        obs, _ = env.reset(seed=1)
        assert env.render() == obs
        obs = env.step(act("bash", command="echo rendered"))[0]
        assert env.render() == obs == "rendered\n[exit code 0]"


@needs_root
def test_a_platform_failure_raises_and_has_no_reward(tmp_path: Path) -> None:
    broken = "async def grade(ctx):\n    raise RuntimeError('grader bug')\n"
    task = tiny_task(tmp_path / "tasks", name="broken", grader=broken)
    with make(str(task), artifacts_dir=tmp_path / "a") as env:
        env.reset(seed=1)
        with pytest.raises(EpisodeError, match="grader bug") as exc:
            env.step(act("submit"))
        assert exc.value.grade is not None and exc.value.grade.reward is None
        env.reset(seed=1)  # the env is usable again


# -- determinism on the real task -----------------------------------------------------------


def fault_plan(grade: dict[str, Any]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """The grade's fault timeline without its timestamps: kind, action, label, targets."""
    return [(e["fault"], e["action"], e["label"], tuple(e["targets"])) for e in grade["timeline"]]


@needs_root
def test_same_seed_same_actions_same_schedule_and_reward(tmp_path: Path) -> None:
    """kv-replicated, the robust reference written through write_file then submit: seed 7
    twice gives the same steps, the same fault schedule (kinds, order, targets), every gate
    passed and rewards within 0.05 (measured on a live system: 0.993 and 0.996 in one CI
    run); seed 8 gives another schedule. About 80 s: three gradings."""
    script = reference_agent(find_task("kv-replicated"), "robust").actions
    actions = [json.dumps({"name": c.name, "arguments": c.arguments}) for c in script]
    actions.append(act("submit"))

    def play(seed: int) -> tuple[list[tuple[Any, ...]], float, dict[str, Any]]:
        with make("kv-replicated", artifacts_dir=tmp_path / f"s{seed}") as env:
            steps: list[tuple[Any, ...]] = [env.reset(seed=seed)]
            for a in actions:
                obs, reward, terminated, truncated, info = env.step(a)
                grade = info.pop("grade", None)
                steps.append((obs, reward, terminated, truncated, info))
            assert terminated and grade is not None and grade["error"] is None
            return steps, reward, grade

    steps_a, reward_a, grade_a = play(7)
    steps_b, reward_b, grade_b = play(7)
    _, reward_c, grade_c = play(8)
    plan_a, plan_b, plan_c = fault_plan(grade_a), fault_plan(grade_b), fault_plan(grade_c)
    print(f"seed 7: reward {reward_a}, {reward_b}; seed 8: reward {reward_c}")
    print("seed 7:", plan_a, "\nseed 8:", plan_c)
    # every observation and info but the grade; the reward is measured on a live system
    # (fresh workload randomness, real timing), so equal within 0.05, not to the bit
    assert steps_a[:-1] == steps_b[:-1]
    assert steps_a[-1][0] == steps_b[-1][0] and steps_a[-1][2:] == steps_b[-1][2:]
    assert reward_a == grade_a["reward"] and reward_b == grade_b["reward"]
    assert abs(reward_a - reward_b) <= 0.05
    assert reward_a >= 0.85 and reward_c >= 0.85
    assert plan_a == plan_b and len(plan_a) == 12  # six faults, each applied and healed
    assert plan_c != plan_a
    assert sorted(k for k, a, *_ in plan_a if a == "apply") == ["crash", "crash", "partition",
        "partition", "pause", "pause"]  # fmt: skip
    assert grade_a["breakdown"].keys() == grade_b["breakdown"].keys()
    gates = ("functional", "serving", "no-spof", "linearizable", "lost-writes")
    assert all(grade_a["breakdown"][g] == grade_b["breakdown"][g] == 1.0 for g in gates)
