"""The `infragym` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, needs_root
from servicetask import service_task
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym.history import FaultAction, FaultEvent, History, OpEvent, OpType

INFRAGYM = [sys.executable, "-m", "infragym.cli.main"]


def run(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INFRAGYM, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, **(env or {})})


def _kv_history(lose_write: bool) -> History:
    """A write acknowledged, a crash, then a final read that does or does not see it."""
    h = History()
    h.append(OpEvent(OpType.INVOKE, 0, "write", 0.0, "k", "v1", 0.0, "n1"))
    h.append(OpEvent(OpType.OK, 0, "write", 0.01, "k", "v1", None, "n1"))
    h.record_fault(FaultEvent(0.5, "crash", FaultAction.APPLY, "crash-1", ("n1",)))
    h.record_fault(FaultEvent(1.0, "crash", FaultAction.HEAL, "crash-1", ("n1",)))
    h.append(OpEvent(OpType.INVOKE, 1, "read", 2.0, "k", None, 2.0, "n1"))
    h.append(OpEvent(OpType.OK, 1, "read", 2.01, "k", None if lose_write else "v1", None, "n1"))
    return h


def test_check_exit_codes_follow_verdicts(tmp_path: Path) -> None:
    good = _kv_history(lose_write=False).write_jsonl(tmp_path / "good.jsonl")
    bad = _kv_history(lose_write=True).write_jsonl(tmp_path / "bad.jsonl")
    r = run("check", str(bad), "--json")
    assert r.returncode == 1, r.stderr
    verdicts = json.loads(r.stdout)
    assert verdicts["lost-writes"]["verdict"] == "fail"
    assert verdicts["linearizable"]["verdict"] == "fail"
    r = run("check", str(good), "--json")
    out = json.loads(r.stdout)
    assert out["lost-writes"]["verdict"] == "pass" and out["linearizable"]["verdict"] == "pass"
    assert r.returncode in (0, 1)  # availability may be unknown on 2 operations, never fail
    assert out["availability"]["verdict"] != "fail"


def test_check_malformed_history_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    p.write_text('{"kind": "header", "schema": 1}\n{"kind": "op", "type": "ok"\n')
    r = run("check", str(p))
    assert r.returncode == 2
    assert "h.jsonl:2" in r.stderr and "not valid JSON" in r.stderr
    p.write_bytes(b"\x00\xff\xfe binary")
    r = run("check", str(p))
    assert r.returncode == 2 and "error:" in r.stderr
    r = run("check", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_unknown_command_and_help() -> None:
    r = run("frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("check", "doctor", "cleanup", "demo"):
        assert cmd in r.stdout


@needs_root
def test_doctor_lists_every_fault_with_a_reason() -> None:
    r = run("doctor", "--json")
    data = json.loads(r.stdout)
    assert set(data["faults"]) == {"crash", "pause", "partition", "loss", "bandwidth",
                                   "latency", "disk-full", "clock-skew", "runaway-log",
                                   "damaged-data"}
    assert data["capabilities"]["netem"]["supported"] is False  # absent on these kernels
    assert "proxy" in data["capabilities"]["netem"]["reason"]
    if ROOT:  # probed on a real host: sandboxed code cannot make a user namespace
        assert data["capabilities"]["no-userns"]["supported"] is True, data
    assert all(v["reason"] for v in data["faults"].values())
    assert r.returncode == (0 if all(v["supported"] for v in data["faults"].values()) else 1)


def test_doctor_says_what_gradings_may_use_and_how_many_run_at_once() -> None:
    r = run("doctor", "--json", env={"INFRAGYM_GRADING_CORES": "1.5"})
    data = json.loads(r.stdout)
    assert data["grading"]["cores"] == 1.5 and data["grading"]["source"] == "INFRAGYM_GRADING_CORES"
    kv = data["tasks"]["kv-replicated"]
    assert kv["grading_cores"] == 0.6 and kv["default_concurrency"] == 2  # 1.5 // 0.6
    r = run("doctor", env={"INFRAGYM_GRADING_CORES": "lots"})
    assert r.returncode == 2 and "INFRAGYM_GRADING_CORES='lots'" in r.stderr, r.stderr


@needs_root
def test_cleanup_reports_json() -> None:
    r = run("cleanup", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {"runs", "processes", "namespaces", "links", "mounts"} <= set(data)


@needs_root
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    r = run("demo", "--core", "--seed", "3", "--duration", "9", "--out", str(tmp_path),
            timeout=180)
    out = tmp_path / "core"
    assert r.returncode == 0, r.stderr + r.stdout
    for section in ("fault timeline", "availability per window", "verdicts"):
        assert section in r.stdout
    history = History.read_jsonl(out / "history.jsonl")
    assert history.faults, "the nemesis injected nothing"
    windows = history.fault_windows()
    assert windows and all(w.end != float("inf") for w in windows), "every fault was healed"
    ops = history.operations()
    assert len(ops) > 500
    assert {o.f for o in ops} >= {"read", "write"}
    assert any(o.f == "read" and o.invoke > windows[-1].end for o in ops), "final reads"
    assert (out / "hosts" / "n1" / "logs" / "kv.log").exists()
    # offline re-check gives the same verdicts as the run printed
    r2 = run("check", str(out / "history.jsonl"), "--json", "--p99", "0.5")

    def strict(s: str) -> object:
        raise ValueError(f"non-strict JSON constant {s}")

    checked = json.loads(r2.stdout, parse_constant=strict)  # no Infinity / NaN
    assert checked["lost-writes"]["verdict"] == "pass"


def test_list_show_validate() -> None:
    r = run("list", "--json")
    assert r.returncode == 0, r.stderr
    listed = {t["name"]: t for t in json.loads(r.stdout)}
    assert "kv-replicated" in listed and listed["kv-replicated"]["roles"] == {}
    # a task of roles is listed by role, with the host counts its variants may draw
    assert listed["ha-web"]["roles"] == {"lb": [2, 3], "app": [2, 3]}
    assert re.search(r"ha-web +│ lb 2-3, app 2-3 ", run("list").stdout)
    shown = " ".join(run("show", "ha-web", "--seed", "4").stdout.split())  # unwrapped
    assert "hosts 6 (dev 6)" in shown and "hosts lb edge1, edge2, edge3; app web1" in shown
    r = run("show", "kv-replicated")
    assert r.returncode == 0 and "Deployment contract" in r.stdout
    assert "variants: 216 distinct" in r.stdout and "the default variant" in r.stdout
    assert "runs on 3 hosts" in r.stdout and "PORT (8080)" in r.stdout
    # --seed N: the instructions that seed's episode shows (seed 4: 5 hosts, port 9000)
    r = run("show", "kv-replicated", "--seed", "4")
    assert r.returncode == 0, r.stderr
    assert "the variant of seed 4" in r.stdout and "hosts node1, node2" in r.stdout
    assert "runs on 5 hosts" in r.stdout and "PORT (9000)" in r.stdout
    instructions = r.stdout.split("survives losing a host", 1)[1]  # below the spec lines
    assert "8080" not in instructions and "{{" not in instructions
    from infragym.tasks import find_task

    r = run("validate", str(find_task("kv-replicated").path))
    assert r.returncode == 0 and "valid" in r.stdout
    r = run("show", "no-such-task")
    assert r.returncode == 2 and "no task 'no-such-task'" in r.stderr


@needs_root
def test_run_reference_and_noop_through_the_cli(tmp_path: Path) -> None:
    """`run` by a task's folder (the tiny service task: one host, one pause): a reference
    earns its reward with the breakdown and a history with the fault, the no-op earns 0, an
    unknown reference is a usage error."""
    task = str(service_task(tmp_path / "tasks"))
    r = run("run", task, "--agent", "reference:robust", "--seed", "1", "--json",
            "--out", str(tmp_path / "robust"), timeout=300)
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)["episodes"]
    assert res["reward"] == 1.0 and res["functional"] == 1.0 and res["error"] is None
    assert set(res["breakdown"]) == {"functional", "serving", "lost-writes"}
    assert [f.fault for f in History.read_jsonl(res["history_path"]).faults] == ["pause"] * 2
    r = run("run", task, "--agent", "reference:broken", "--json", "--out", str(tmp_path / "b"))
    assert r.returncode == 0 and json.loads(r.stdout)["episodes"][0]["reward"] == 0.0
    r = run("run", task, "--agent", "noop", "--json", "--out", str(tmp_path / "n"))
    assert r.returncode == 0 and json.loads(r.stdout)["episodes"][0]["reward"] == 0.0
    r = run("run", task, "--agent", "reference:gold")
    assert r.returncode == 2 and "no reference solution 'gold'" in r.stderr


@needs_root
def test_play_runs_lines_in_the_agent_sandbox_and_grades_on_submit(tmp_path: Path) -> None:
    script = ("echo user-$(id -un)\n"
              "printf 'from play' > notes.txt\n"
              ":read notes.txt\n"
              ":host n2 hostname\n"
              ":host\n"
              "cat /work/main/README.md /root/.bashrc\n"
              ":submit\n")
    r = subprocess.run([*INFRAGYM, "play", "kv-replicated", "--out", str(tmp_path)],
                       input=script, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "user-sandbox" in out and "from play" in out and "n2" in out
    assert "usage: :host HOST COMMAND" in r.stderr
    assert "No such file or directory" in out  # the machine's files are out of sight
    assert "reward 0.000" in out  # the starter workspace, graded at submit


@needs_root
def test_main_demo_shows_naive_and_robust_side_by_side(tmp_path: Path) -> None:
    r = run("demo", "--out", str(tmp_path), timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    for section in ("fault timeline", "availability per window", "naive vs robust",
                    "functional tests alone", "infragym reward"):
        assert section in r.stdout, section
    line = next(ln for ln in r.stdout.splitlines() if "infragym reward" in ln)
    naive, robust = (float(x) for x in line.replace("│", " ").split()[-2:])
    assert naive <= 0.40 and robust >= 0.85


@needs_root
def test_scripted_model_through_the_cli_earns_the_reference_reward(tmp_path: Path) -> None:
    """`run --agent openai:MODEL` against a local chat-completions server over real HTTP, on
    the tiny task (what is tested is the model's path through the CLI, not a task's grading:
    kv-replicated's run through the CLI is tested above)."""
    import asyncio
    import os
    import threading

    from infragym.tasks import find_task
    from infragym.testing import ScriptedModelServer, reference_script

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    tiny = str(tiny_task(tmp_path / "task", dev_hosts=0, grader=WORKSPACE_GRADER))
    server = ScriptedModelServer(reference_script(find_task(tiny), "robust"),
                                 models=("test-model",), api_key="test-key")
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        env = {**os.environ, "OPENAI_API_KEY": "test-key"}
        r = subprocess.run([*INFRAGYM, "run", tiny, "--agent", "openai:test-model",
                            "--base-url", server.url, "--seed", "1", "--json",
                            "--out", str(tmp_path / "model")],
                           capture_output=True, text=True, timeout=300, check=False, env=env)
        assert r.returncode == 0, r.stderr
        (model,) = json.loads(r.stdout)["episodes"]
        (ref,) = json.loads(run("run", tiny, "--agent", "reference:robust", "--seed",
                                "1", "--json", "--out", str(tmp_path / "ref"),
                                timeout=300).stdout)["episodes"]
        assert model["end_reason"] == "submit" and model["error"] is None
        assert model["reward"] == ref["reward"] == 1.0, (model["reward"], ref["reward"])
        assert len(server.requests) >= 2  # one per written file, then submit
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "kv-replicated", "--seeds", "5-1"], "the range 5-1 is reversed; write 1-5"),
    (["run", "kv-replicated", "--seeds", "1-"], "the range 1- has no end"),
    (["run", "kv-replicated", "--seeds", "1,-3"], "-3 is negative; seeds are whole numbers >= 0"),
    (["run", "kv-replicated", "--seeds", "1-3,2"], "seed 2 is given twice"),
    (["run", "kv-replicated", "--seeds", "1,,2"], "an empty item"),
    (["run", "kv-replicated", "--seeds", "0-10000"], "10001 seeds; at most 10000"),
    (["run", "kv-replicated", "--seeds", "x"], "x is not a whole number"),
    (["grade", "kv-replicated", "--workspace", ".", "--seed", "-1"], "-1 is negative"),
    (["play", "kv-replicated", "--seed", "-1"], "-1 is negative"),
    (["demo", "--seed", "-1"], "-1 is negative"),
    (["play", "kv-replicated", "--seed", "1-3"], "3 seeds; this command takes one seed"),
    (["run", "kv-replicated", "--concurrency", "0"], "0 is not a whole number >= 1"),
])
def test_every_command_reads_seeds_by_one_rule(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Argument errors exit 2 before anything runs, and say what is wrong and what to write."""
    from infragym.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err



def test_validate_imports_the_grader_and_checks_the_start_script(tmp_path: Path) -> None:
    """Each problem a task author meets before grading would: a grader that does not
    compile or import, one without `async def grade(ctx)`, a workspace or solution without
    the start script grading runs. All are reported at once, exit 1."""
    from tinytask import tiny_task

    syntax = tiny_task(tmp_path, name="syntax", grader="async def grade(ctx):\n    return (\n")
    r = run("validate", str(syntax))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "grader.py does not compile" in r.stderr and "line 2" in r.stderr, r.stderr

    imports = tiny_task(tmp_path, name="imports",
                        grader="import no_such_module\n\nasync def grade(ctx):\n    pass\n")
    r = run("validate", str(imports))
    assert r.returncode == 1 and "No module named 'no_such_module'" in r.stderr, r.stderr

    grader = ('"""Define `async def grade(ctx)` here."""\n'
              'START_CMD = ("/bin/sh", "/srv/app/start.sh")\n\n'
              'def grade(ctx):\n    pass\n')
    d = tiny_task(tmp_path, name="no-grade", grader=grader)
    (d / "workspace" / "start.sh").write_text("exec python3 server.py\n")
    (d / "solutions" / "naive").mkdir()
    (d / "solutions" / "naive" / "start.sh").write_text("exec python3 server.py\n")
    r = run("validate", str(d))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 problem(s)" in r.stderr, r.stderr
    assert "must define `async def grade(ctx)`" in r.stderr
    assert "solutions/robust/ has no start.sh" in r.stderr  # robust lacks it, naive has it
    assert "solutions/naive/" not in r.stderr and "starter workspace" not in r.stderr
    (d / "workspace" / "start.sh").unlink()
    r = run("validate", str(d))
    assert "3 problem(s)" in r.stderr and "the starter workspace/ has no start.sh" in r.stderr


def _data_env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}


@needs_root
def test_run_json_has_one_shape_and_a_second_run_into_the_same_out_is_refused(
    tmp_path: Path,
) -> None:
    """One seed or many, `run --json` prints {"episodes": [...], "summary": ...}; without
    --out the run goes to $XDG_DATA_HOME/infragym/runs, not ./runs; the same --out twice
    resumes the run there (nothing left to run: nothing appended), and a non-empty --out
    that holds no run is refused before anything runs."""
    from tinytask import WORKSPACE_GRADER, tiny_task

    task = str(tiny_task(tmp_path, dev_hosts=0, grader=WORKSPACE_GRADER))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = subprocess.run([*INFRAGYM, "run", task, "--agent", "noop", "--json"], cwd=cwd,
                       env=_data_env(tmp_path), capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [e["seed"] for e in res["episodes"]] == [1] and res["episodes"][0]["reward"] == 0.0
    assert res["summary"] == {"episodes": 1, "errors": 0, "mean": 0.0, "min": 0.0, "max": 0.0}
    out = Path(res["out"])
    assert out.parent == tmp_path / "xdg" / "infragym" / "runs" / "tiny", out
    assert out.name.startswith("noop-") and (out / "trajectories.jsonl").is_file()
    assert list(cwd.iterdir()) == []  # nothing written where the command ran

    r = subprocess.run([*INFRAGYM, "run", task, "--agent", "noop", "--out", str(out)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "seed 1: reward 0.000 (kept from the interrupted run)" in r.stdout
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 1
    (out / "run.sqlite").unlink()  # no longer a run: a directory of someone's files
    r = subprocess.run([*INFRAGYM, "run", task, "--agent", "noop", "--out", str(out)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2
    assert f"--out {out} is not empty" in r.stderr and "choose another --out" in r.stderr
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 1


def test_grade_writes_under_the_data_home_not_the_current_directory(tmp_path: Path) -> None:
    from tinytask import WORKSPACE_GRADER, tiny_task

    task = tiny_task(tmp_path, dev_hosts=0, grader=WORKSPACE_GRADER)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = _data_env(tmp_path)
    del env["XDG_DATA_HOME"]
    env["HOME"] = str(tmp_path / "home")  # no XDG_DATA_HOME: ~/.local/share
    r = subprocess.run([*INFRAGYM, "grade", str(task), "--workspace",
                        str(task / "solutions" / "robust"), "--json"], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["reward"] == 1.0
    runs = tmp_path / "home" / ".local" / "share" / "infragym" / "runs" / "tiny"
    assert Path(res["artifacts_dir"]).parent == runs and list(cwd.iterdir()) == []


def test_check_scores_a_task_history_with_the_tasks_own_rubric(tmp_path: Path) -> None:
    """A history a grader recorded names its task: `check` gives that task's reward (here
    kv-replicated's, whose gates a two-operation history cannot pass); --generic gives the
    generic checkers' verdicts as before."""
    h = _kv_history(lose_write=False)
    h.meta.update({"task": "kv-replicated", "functional": {"tests": {"t": None}}})
    path = h.write_jsonl(tmp_path / "kv.jsonl")
    r = run("check", str(path), "--json")
    out = json.loads(r.stdout)
    assert out["task"] == "kv-replicated", r.stderr
    assert out["reward"] == 0.0 and "serving" in out["gates_failed"]
    assert "linearizable" in out["vacuous"]  # 2 operations judged, fewer than it needs
    assert r.returncode == 1
    generic = json.loads(run("check", str(path), "--json", "--generic").stdout)
    assert generic["lost-writes"]["verdict"] == "pass"
    r = run("check", str(path), "--task", "no-such-task")
    assert r.returncode == 2 and "no-such-task" in r.stderr
