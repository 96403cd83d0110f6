"""The env API end to end: reset, tool calls, limits, grading, errors and cleanup.

Episodes run a tiny task made under tmp_path (its grader checks ``answer.txt`` on a fresh
one-host production cluster), so these tests do not depend on any built-in task.
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
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, assert_no_leftovers, leftovers, needs_root
from episodes import bash, run_ids
from tinytask import tiny_task

import infragym
from infragym import ConfigError
from infragym.env import (
    Env,
    EnvOptions,
    EpisodeError,
    StepResult,
    SyncEnv,
    ToolCall,
    ToolError,
    make,
)
from infragym.env._output import render_cut, safe_text
from infragym.env._tools import tool_specs, validate_arguments
from infragym.sandbox import cleanup
from infragym.tasks import Limits as TaskLimits

pytestmark = pytest.mark.usefixtures("no_runs_left")



@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    return tiny_task(tmp_path / "tasks")


@pytest.fixture
def episode(task_dir: Path, tmp_path: Path) -> Iterator[SyncEnv]:
    """A started episode of the tiny task; afterwards nothing of it may be left."""
    if not ROOT:
        pytest.skip("needs root")
    env = SyncEnv(make(str(task_dir), artifacts_dir=tmp_path / "artifacts"))
    env.reset(seed=7)
    ids = run_ids(env)
    try:
        yield env
    finally:
        env.close()
    for run_id in ids:
        assert_no_leftovers(run_id)


# -- pure parts ----------------------------------------------------------------------------


def test_output_is_truncated_with_a_marker_and_shown_safely() -> None:
    text = render_cut(b"a" * 10, b"z" * 10, 980)
    assert text.startswith("a" * 10) and text.rstrip().endswith("z" * 10)
    assert "980 bytes cut" in text and "first 10" in text and "last 10" in text
    assert render_cut(b"abc", b"", 0) == "abc"
    binary = safe_text(b"ok\x00\xff\x1b[0m\tend\n")
    assert binary == "ok\\xff\\x1b[0m\tend\n"
    assert "binary data" in render_cut(b"\x00\x01\x02", b"", 0)
    # a character cut in half at either edge of the cut is dropped, not mangled
    e = "é".encode()
    assert render_cut(b"x" + e[:1], e[1:] + b"y", 5).replace("\n", "").endswith("bytes ...]y")


def test_tool_schemas_and_argument_checks() -> None:
    specs = tool_specs(["n1", "n2"], TaskLimits(10, 60, 5), EnvOptions())
    assert [s.name for s in specs] == ["bash", "read_file", "write_file", "host_bash", "submit"]
    for s in specs:
        d = s.openai()
        assert d["type"] == "function" and d["function"]["name"] == s.name
        assert d["function"]["parameters"]["additionalProperties"] is False
        json.dumps(d)
    by = {s.name: s for s in specs}
    assert by["host_bash"].parameters["properties"]["host"]["enum"] == ["n1", "n2"]
    assert validate_arguments(by["host_bash"], {"host": "n1", "command": "ls"}) == {
        "host": "n1",
        "command": "ls",
        "background": False,
    }
    assert validate_arguments(by["bash"], {"command": "ls", "timeout": None}) == {"command": "ls"}
    nul = {"path": "a", "content": "x\0y é"}  # file content may hold any character but a surrogate
    assert validate_arguments(by["write_file"], nul) == nul
    for tool, args, match in [
        ("bash", {}, "missing required argument.*'command'"),
        ("bash", {"command": 3}, "'command' must be a string"),
        ("bash", {"command": "x", "timeout": "9"}, "'timeout' must be a number"),
        ("bash", {"command": "x", "timeout": True}, "'timeout' must be a number"),
        ("bash", {"command": "x", "timeout": -1}, "timeout must be > 0"),
        ("bash", {"command": "x", "cwd": "/"}, "unexpected argument 'cwd'"),
        ("host_bash", {"host": "n9", "command": "x"}, "host must be one of n1, n2"),
        ("submit", {"now": True}, "it takes no arguments"),
        # what a JSON escape carries but no command, path or file can (once a platform error)
        ("bash", {"command": "echo \ud800"}, "not valid Unicode.*character 5"),
        ("write_file", {"path": "a", "content": "\udfff"}, "'content' is not valid Unicode"),
        ("read_file", {"path": "a\ud800"}, "'path' is not valid Unicode"),
        ("bash", {"command": "echo a\0b"}, "'command' contains a NUL"),
        ("host_bash", {"host": "n1", "command": "\0"}, "'command' contains a NUL"),
        ("bash", {"command": "x" * (128 << 10)}, "over the 131071 the kernel allows"),
        ("read_file", {"path": "é" * (64 << 10)}, "'path' is 131072 bytes"),
        ("bash", {"command": "x", "timeout": 10**400}, "finite number below 1e"),
        ("bash", {"command": "x", "timeout": 1e12}, "finite number below 1e"),
    ]:
        with pytest.raises(ToolError, match=match):
            validate_arguments(by[tool], args)
    assert [s.name for s in tool_specs([], TaskLimits(), EnvOptions())] == [
        "bash",
        "read_file",
        "write_file",
        "submit",
    ]


def test_actions_parse_from_openai_tool_calls() -> None:
    c = ToolCall.parse(
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "bash", "arguments": '{"command": "ls"}'},
        }
    )
    assert (c.name, c.id, c.decoded_arguments()) == ("bash", "c1", {"command": "ls"})
    assert ToolCall.parse({"name": "submit"}).decoded_arguments() == {}
    with pytest.raises(ToolError, match="not valid JSON"):
        ToolCall("bash", "{nope").decoded_arguments()
    with pytest.raises(ToolError, match="JSON object"):
        ToolCall("bash", "[1]").decoded_arguments()
    with pytest.raises(TypeError, match="an action is a ToolCall"):
        ToolCall.parse("bash ls")  # type: ignore[arg-type]


def test_make_rejects_unknown_tasks_and_options(task_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no task 'no-such-task'"):
        infragym.make("no-such-task")
    with pytest.raises(ConfigError, match=r"unknown env option.*bogus"):
        make(str(task_dir), bogus=1)
    for bad in (
        {"max_output_bytes": 0},
        {"max_steps": 0},
        {"agent_wall_s": -1},
        {"sandbox_limits": "big"},
        {"workspace_bytes": 1 << 40},
    ):
        with pytest.raises(ConfigError):
            make(str(task_dir), **bad)
    env = infragym.make(str(task_dir), max_steps=3)
    assert isinstance(env, Env) and env.limits.max_steps == 3
    assert env.limits.command_timeout_s == 10 and env.dev_hosts == ("n1",)


def test_env_all_is_complete_and_public() -> None:
    import infragym.env as mod

    assert sorted(mod.__all__) == sorted(set(mod.__all__))
    assert all(hasattr(mod, n) for n in mod.__all__)
    public = {
        n for n in vars(mod) if not n.startswith("_") and not isinstance(getattr(mod, n), type(mod))
    }
    assert public == set(mod.__all__), public ^ set(mod.__all__)
    assert "make" in infragym.__all__ and infragym.make.__doc__


def test_importing_infragym_does_not_load_the_env() -> None:
    code = "import sys, infragym; print('infragym.env' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_stepping_without_an_episode_is_an_error(task_dir: Path) -> None:
    with pytest.raises(EpisodeError, match="call reset"):
        asyncio.run(make(str(task_dir)).step(bash("true")))


# -- episodes ------------------------------------------------------------------------------


@needs_root
def test_an_episode_end_to_end_async(task_dir: Path, tmp_path: Path) -> None:
    async def main() -> tuple[StepResult, list[str]]:
        async with infragym.make(str(task_dir), artifacts_dir=tmp_path / "a") as env:
            obs = await env.reset(seed=11)
            ids = run_ids(env)
            assert obs.instructions.startswith("Write 42") and obs.seed == 11
            assert [t["function"]["name"] for t in obs.openai_tools()] == [
                "bash",
                "read_file",
                "write_file",
                "host_bash",
                "submit",
            ]
            r = await env.step(ToolCall("read_file", {"path": "README"}, id="c1"))
            assert r.observation.content == "starter file\n" and r.observation.call_id == "c1"
            assert r.reward == 0.0 and not r.terminated and not r.truncated
            assert r.info["step"] == 1 and r.info["tool"] == "read_file"
            r = await env.step(
                {"name": "write_file", "arguments": '{"path": "answer.txt", "content": "42\\n"}'}
            )
            assert r.observation.content == "wrote 3 bytes to /workspace/answer.txt"
            r = await env.step(bash("cat answer.txt; echo oops >&2; exit 3"))
            assert r.observation.content == "42\noops\n[exit code 3]"
            assert r.info["exit_code"] == 3 and not r.observation.is_error
            # the dev host sees the workspace live and read-only at /srv/app
            r = await env.step(
                ToolCall(
                    "host_bash",
                    {"host": "n1", "command": "cat answer.txt; hostname; touch x || echo RO"},
                )
            )
            assert r.observation.content.split() == ["42", "n1", *r.observation.content.split()[2:]]
            assert "RO" in r.observation.content and "[exit code 0]" in r.observation.content
            r = await env.step(ToolCall("submit", {}, id="end"))
            assert r.terminated and not r.truncated and r.reward == 1.0
            grade = r.info["grade"]
            assert grade.reward == 1.0 and grade.seed == 11 and grade.notes == ["seed 11"]
            assert r.info["end_reason"] == "submit" and r.observation.call_id == "end"
            assert Path(grade.artifacts_dir or "").is_relative_to(tmp_path / "a")
            assert env.workstation is None and env.dev_cluster is None
            with pytest.raises(EpisodeError, match="call reset"):
                await env.step(bash("true"))
            return r, ids

    _, ids = asyncio.run(main())
    for run_id in ids:
        assert_no_leftovers(run_id)


@needs_root
def test_an_episode_through_the_sync_wrapper_scores_a_wrong_answer_0(
    task_dir: Path, tmp_path: Path
) -> None:
    with SyncEnv(make(str(task_dir), artifacts_dir=tmp_path)) as env:
        env.reset(seed=1)
        ids = run_ids(env)
        # special files must not turn the agent's failure into a platform error
        env.step(
            bash(
                'echo 41 > answer.txt; mkfifo pipe; python3 -c "import socket; '
                "socket.socket(socket.AF_UNIX).bind('sock')\"; ls"
            )
        )
        _, reward, terminated, truncated, info = env.step(ToolCall("submit"))
        assert (reward, terminated, truncated) == (0.0, True, False)
        assert info["grade"].breakdown == {"answer": 0.0}
    for run_id in ids:
        assert_no_leftovers(run_id)


@needs_root
def test_bad_tool_calls_are_shown_to_the_model_and_the_episode_goes_on(
    episode: SyncEnv,
) -> None:
    episode.step(bash("mkdir d; ln -s /etc/passwd pw; ln -s /tmp/x out; echo hi > f"))
    for call, match in [
        (ToolCall("rm_rf", {}), "there is no tool 'rm_rf'; the tools are bash, read_file"),
        (ToolCall("bash", {}), "missing required argument"),
        (ToolCall("bash", '{"command": '), "not valid JSON"),
        (ToolCall("read_file", {"path": "/etc/passwd"}), "outside the workspace"),
        (ToolCall("read_file", {"path": "../../etc/shadow"}), "outside the workspace"),
        (ToolCall("read_file", {"path": "pw"}), r"outside the workspace /workspace \(/etc/passwd"),
        (ToolCall("read_file", {"path": "d"}), "is a directory"),
        (ToolCall("read_file", {"path": "missing"}), "does not exist"),
        (ToolCall("read_file", {"path": "a\0b"}), "NUL"),
        (ToolCall("write_file", {"path": "out", "content": "x"}), "outside the workspace"),
        (ToolCall("write_file", {"path": "/etc/x", "content": "x"}), "outside the workspace"),
        (ToolCall("write_file", {"path": "f/g", "content": "x"}), "cannot create the dir"),
        (ToolCall("host_bash", {"host": "n7", "command": "ls"}), "must be one of n1"),
        # JSON escapes a model can send: once these ended the episode as a platform failure
        (ToolCall("bash", '{"command": "echo \\ud800"}'), "not valid Unicode"),
        (ToolCall("bash", '{"command": "echo a\\u0000b"}'), "contains a NUL"),
        (ToolCall("write_file", '{"path": "s", "content": "\\udc80"}'), "not valid Unicode"),
        (ToolCall("bash", '{"command": "ls", "timeout": 1' + "0" * 400 + "}"), "finite number"),
        (ToolCall("bash", "[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (ToolCall("bash", {"command": "cat <<EOF\n" + "x" * 140_000 + "\nEOF"}), "kernel allows"),
    ]:
        obs, reward, terminated, truncated, info = episode.step(call)
        assert obs.is_error and obs.content.startswith("error: "), (call, obs)
        assert re_search(match, obs.content), (match, obs.content)
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["is_error"] is True
    assert episode.step(bash("cat f")).observation.content == "hi\n[exit code 0]"


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


@needs_root
def test_long_and_binary_output(task_dir: Path, tmp_path: Path) -> None:
    with SyncEnv(
        make(str(task_dir), artifacts_dir=tmp_path, max_output_bytes=1000, max_read_bytes=600)
    ) as env:
        env.reset(seed=1)
        r = env.step(bash("seq 1 100000"))
        text = r.observation.content
        total = len("".join(f"{i}\n" for i in range(1, 100001)))
        assert text.startswith("1\n2\n3\n") and text.endswith("99999\n100000\n[exit code 0]")
        assert f"{total - 1000:,} bytes cut" in text and r.info["output_bytes"] == total
        assert len(text) < 1300
        r = env.step(bash(r"printf 'a\000b\377c\n'; head -c 3000 /dev/urandom > blob"))
        assert (
            r.observation.content.startswith("ab\\xffc\n")
            and "binary data" in r.observation.content
        )
        r = env.step(ToolCall("read_file", {"path": "blob"}))
        assert "showing the first 600 of 3,000 bytes" in r.observation.content
        assert "\0" not in r.observation.content
        env.step(ToolCall("write_file", {"path": "deep/er/ü.txt", "content": "ünïcode\n"}))
        r = env.step(ToolCall("read_file", {"path": "/workspace/deep/er/ü.txt"}))
        assert r.observation.content == "ünïcode\n"
        r = env.step(bash("stat -c '%U %a' deep/er/ü.txt"))
        assert r.observation.content.startswith("sandbox 644")
        r = env.step(ToolCall("write_file", {"path": "big", "content": "x" * 5_000_000}))
        assert r.observation.is_error and "limit is 4,194,304" in r.observation.content


@needs_root
def test_step_limit_ends_and_grades_the_episode(tmp_path: Path) -> None:
    d = tiny_task(tmp_path, max_steps=3)
    with SyncEnv(make(str(d), artifacts_dir=tmp_path / "a")) as env:
        env.reset(seed=2)
        assert not env.step(ToolCall("write_file", {"path": "answer.txt", "content": "42"}))[2]
        assert env.step(bash("true")).truncated is False
        obs, reward, terminated, truncated, info = env.step(bash("echo last"))
        assert obs.content == "last\n[exit code 0]"
        assert (reward, terminated, truncated, info["end_reason"]) == (
            1.0,
            False,
            True,
            "max_steps",
        )


@needs_root
def test_wall_time_clips_commands_and_ends_the_episode(tmp_path: Path) -> None:
    d = tiny_task(tmp_path)
    with SyncEnv(make(str(d), artifacts_dir=tmp_path / "a", agent_wall_s=1.5)) as env:
        env.reset(seed=2)
        t = time.monotonic()
        obs, reward, terminated, truncated, info = env.step(bash("sleep 300", timeout=120))
        # clipped by the 1.5 s of wall time left, long before the command's own 120 s (a
        # generous bound: a busy machine once took over 6 s to end the episode)
        assert time.monotonic() - t < 60
        assert "timed out after" in obs.content and info["timed_out"] is True
        assert (reward, terminated, truncated, info["end_reason"]) == (
            0.0,
            False,
            True,
            "wall_time",
        )


@needs_root
def test_a_failing_grader_is_an_error_not_a_zero(tmp_path: Path) -> None:
    d = tiny_task(tmp_path, grader="async def grade(ctx):\n    raise RuntimeError('boom')\n")
    with SyncEnv(make(str(d), artifacts_dir=tmp_path / "a")) as env:
        env.reset(seed=3)
        ids = run_ids(env)
        with pytest.raises(EpisodeError, match=r"grading failed.*boom") as err:
            env.step(ToolCall("submit"))
        assert err.value.grade is not None and err.value.grade.reward is None
        assert env.env.workstation is None
    for run_id in ids:
        assert_no_leftovers(run_id)


@needs_root
def test_a_platform_failure_in_a_step_ends_the_episode_with_an_error(
    episode: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = episode.env.workstation
    assert ws is not None
    monkeypatch.setattr(ws, "_bwrap", "/nonexistent/bwrap")
    with pytest.raises(EpisodeError, match="platform failed while running bash"):
        episode.step(bash("true"))
    assert episode.env.workstation is None and ws.closed


@needs_root
def test_reset_ends_the_running_episode_and_dev_hostless_tasks_work(tmp_path: Path) -> None:
    d = tiny_task(tmp_path, dev_hosts=0)
    with SyncEnv(make(str(d), artifacts_dir=tmp_path / "a")) as env:
        obs = env.reset(seed=4)
        assert [t.name for t in obs.tools] == ["bash", "read_file", "write_file", "submit"]
        first = run_ids(env)
        env.step(bash("echo 42 > answer.txt"))
        env.reset(seed=5)
        for run_id in first:
            assert_no_leftovers(run_id)
        r = env.step(bash("cat answer.txt; ls; ip -o link | cut -d: -f2"))
        assert r.observation.content.split() == [
            "cat:",
            "answer.txt:",
            "No",
            "such",
            "file",
            "or",
            "directory",
            "README",
            "lo",
            "[exit",
            "code",
            "0]",
        ]
        second = run_ids(env)
    for run_id in second:
        assert_no_leftovers(run_id)


@needs_root
def test_host_bash_background_and_timeouts(episode: SyncEnv) -> None:
    server = "python3 -m http.server 8000 --bind 0.0.0.0"
    r = episode.step(ToolCall("host_bash", {"host": "n1", "command": server, "background": True}))
    assert "started bg1 on n1" in r.observation.content
    r = episode.step(
        bash(
            "for i in $(seq 50); do curl -sf http://n1:8000/ >/dev/null && "
            "echo UP && break; sleep 0.1; done"
        )
    )
    assert "UP" in r.observation.content
    r = episode.step(ToolCall("host_bash", {"host": "n1", "command": "exit 4", "background": True}))
    assert "exited at once with code 4" in r.observation.content
    cluster = episode.env.dev_cluster
    assert cluster is not None
    before = set(cluster.hosts[0].pids())
    t = time.monotonic()
    r = episode.step(
        ToolCall(
            "host_bash",
            {"host": "n1", "timeout": 1, "command": "echo partial; setsid sleep 300 & sleep 300"},
        )
    )
    assert time.monotonic() - t < 8
    assert "partial" in r.observation.content and "timed out after 1 s" in r.observation.content
    # the sleeps die with the command (Host.run returns while its PID namespace may still
    # be going down, so give the kernel a moment)
    deadline = time.monotonic() + 3
    while not set(cluster.hosts[0].pids()) <= before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(cluster.hosts[0].pids()) <= before
    r = episode.step(ToolCall("host_bash", {"host": "n1", "command": "yes | head -c 5000000"}))
    assert "bytes cut" in r.observation.content and r.info["output_bytes"] == 5_000_000


# -- signals and kills ---------------------------------------------------------------------


def _child(task: Path, body: str) -> subprocess.Popen[str]:
    # SIGINT as a program in a terminal's foreground gets it: pytest started with `&` by a
    # shell without job control ignores SIGINT, its children inherit that, and Python and
    # asyncio leave an ignored SIGINT ignored (the step then ran into its command timeout
    # and the child exited 0)
    code = textwrap.dedent(f"""
        import asyncio, os, signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import infragym
        from infragym.env import ToolCall
        env = infragym.make({str(task)!r}, artifacts_dir={str(task.parent / "art")!r})
    """) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code.replace("SLEEPTAG", SLEEPTAG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# the sleeps of this test process, told apart from any other run's on the machine by a tag
SLEEPTAG = f"{os.getpid() % 1000:03d}7"
LONG_STEP = """
    async def main():
        await env.reset(seed=1)
        cluster = env.dev_cluster
        print(env.workstation.run_id, cluster.run_id if cluster else "", flush=True)
        if cluster:
            await env.step(ToolCall("host_bash", {"host": "n1", "command": "sleep 301.SLEEPTAG",
                                                  "background": True}))
        print("running", flush=True)
        await env.step(ToolCall("bash", {"command": "sleep 302.SLEEPTAG"}))
    asyncio.run(main())
"""


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_mid_step_remove_everything(task_dir: Path, sig: int) -> None:
    p = _child(task_dir, LONG_STEP)
    assert p.stdout is not None
    ids = p.stdout.readline().split()
    assert len(ids) == 2, p.communicate(timeout=30)
    assert p.stdout.readline().strip() == "running"
    time.sleep(0.3)
    assert all(leftovers(i)["netns"] or leftovers(i)["cgroups"] for i in ids)
    p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=30)
        pytest.fail(f"the child outlived signal {sig} by 30 s\n{out=}\n{err=}")
    assert p.returncode != 0, f"the child exited 0 after signal {sig}\n{out=}\n{err=}"
    for run_id in ids:
        assert_no_leftovers(run_id)


@needs_root
@pytest.mark.parametrize("dev_hosts", [1, 0])
def test_what_a_sigkill_leaves_is_swept_by_cleanup(tmp_path: Path, dev_hosts: int) -> None:
    p = _child(tiny_task(tmp_path, dev_hosts=dev_hosts), LONG_STEP)
    assert p.stdout is not None
    ids = p.stdout.readline().split()
    assert len(ids) == 1 + dev_hosts, p.communicate(timeout=30)
    assert p.stdout.readline().strip() == "running"
    time.sleep(0.3)
    p.kill()
    p.communicate(timeout=10)
    for run_id in ids:
        left = leftovers(run_id)
        assert left["cgroups"] and left["mounts"] and left["record"], left
    assert leftovers(ids[-1])["netns"]  # the workstation's own, or the dev cluster's
    report = cleanup()
    assert set(ids) <= set(report.runs), report.summary()
    for run_id in ids:
        assert_no_leftovers(run_id)
    assert not [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit() and _cmdline(pid) in (f"sleep 301.{SLEEPTAG}", f"sleep 302.{SLEEPTAG}")
    ]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@needs_root
def test_host_bash_gives_dev_hosts_the_task_contract_environment(tmp_path: Path) -> None:
    """kv-replicated's [contract.env]: a dev host sees what a production host will, in the
    seed's variant (seed 4: five hosts node1-node5 on port 9000)."""
    from infragym.tasks import find_task

    variant = find_task("kv-replicated").spec.variant(4)
    port, names = variant["port"], variant.host_names
    assert len(names) == 5 and port != 8080
    env = SyncEnv(make("kv-replicated", artifacts_dir=tmp_path))
    try:
        obs = env.reset(seed=4)
        ids = run_ids(env)
        assert obs.dev_hosts == names and f"`PORT` ({port})" in obs.instructions
        host_bash = next(t for t in env.tools if t.name == "host_bash")
        assert "PORT" in host_bash.description and "NODE_ID" in host_bash.description
        r = env.step(ToolCall("host_bash", {
            "host": names[1], "command": 'echo "$PORT $NODE_ID $NODE_ADDRESS $PEERS $DATA_DIR"'}))
        cluster = env.env.dev_cluster
        assert cluster is not None and len(cluster.hosts) == 5
        peers = ",".join(f"{h.name}={h.address}" for h in cluster.hosts)
        expected = f"{port} {names[1]} {cluster.hosts[1].address} {peers} /srv/data"
        assert expected in r.observation.content
        r = env.step(ToolCall("host_bash", {
            "host": names[4], "background": True,
            "command": 'echo "$PORT $NODE_ID" > /srv/logs/env.txt; sleep 30'}))
        r = env.step(ToolCall("host_bash", {
            "host": names[4], "command": "for i in $(seq 50); do [ -s /srv/logs/env.txt ] && "
            "break; sleep 0.1; done; cat /srv/logs/env.txt"}))
        assert f"{port} {names[4]}" in r.observation.content
    finally:
        env.close()
    for run_id in ids:
        assert_no_leftovers(run_id)
