"""The task format: loading, discovery and `validate` reporting every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from infragym import ConfigError
from infragym.tasks import find_task, load_task, validate_layout

GOOD_TOML = """
name = "demo-task"
summary = "A task used by tests."
tags = ["test"]
[topology]
hosts = 3
dev_hosts = 2
[limits]
max_steps = 10
agent_wall_s = 60
command_timeout_s = 5
[grading]
budget_s = 30
"""


def make_task(root: Path, toml: str = GOOD_TOML, name: str = "demo-task") -> Path:
    d = root / name
    (d / "workspace").mkdir(parents=True)
    (d / "solutions" / "robust").mkdir(parents=True)
    (d / "task.toml").write_text(toml)
    (d / "instructions.md").write_text("Build it.\n")
    (d / "grader.py").write_text("async def grade(ctx):\n    raise NotImplementedError\n")
    return d


def test_a_good_task_loads(tmp_path: Path) -> None:
    d = make_task(tmp_path)
    assert validate_layout(d) == []
    t = load_task(d)
    assert t.name == "demo-task" and t.spec.tags == ("test",)
    assert t.spec.topology.dev_hosts == 2 and t.spec.limits.command_timeout_s == 5.0
    assert t.spec.grading_budget_s == 30.0
    assert list(t.solutions()) == ["robust"]
    assert find_task(str(d)).name == "demo-task"
    with pytest.raises(ConfigError, match=r"no reference solution 'naive'.*robust"):
        t.solution("naive")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = GOOD_TOML.replace('name = "demo-task"', 'name = "Bad Name"').replace(
        "hosts = 3", "hosts = 40").replace("max_steps = 10", "max_steps = -1")
    d = make_task(tmp_path, bad + "\nsurprise = 1\n")
    (d / "instructions.md").write_text("")
    (d / "grader.py").write_text("def grade(ctx): pass\n")
    problems = validate_layout(d)
    text = "\n".join(problems)
    for fragment in ("name 'Bad Name'", "topology.hosts = 40", "limits.max_steps",
                     "unknown key 'surprise'", "instructions.md is missing or empty",
                     "async def grade"):
        assert fragment in text, f"{fragment!r} not reported in:\n{text}"
    with pytest.raises(ConfigError, match="is invalid"):
        load_task(d)


def test_broken_toml_and_missing_parts(tmp_path: Path) -> None:
    d = tmp_path / "t"
    d.mkdir()
    (d / "task.toml").write_text("name = [unterminated\n")
    problems = validate_layout(d)
    assert any("not valid TOML" in p for p in problems)
    assert any("workspace/" in p for p in problems)
    assert any("grader.py is missing" in p for p in problems)
    assert any("solutions/" in p for p in problems)
    assert validate_layout(tmp_path / "nope") == [f"{tmp_path / 'nope'} is not a directory"]


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="no task 'nonexistent'"):
        find_task("nonexistent")


@pytest.mark.parametrize("make_bad", ["fifo", "huge"])
def test_an_undeployable_workspace_scores_zero_not_an_error(tmp_path: Path,
                                                            make_bad: str) -> None:
    import asyncio
    import os

    from infragym.grading import grade_workspace

    task = load_task(make_task(tmp_path))
    ws = tmp_path / "ws"
    ws.mkdir()
    if make_bad == "fifo":
        os.mkfifo(ws / "pipe")
    else:
        with open(ws / "sparse", "wb") as fh:  # 100 MiB apparent size, no disk used
            fh.truncate(100 << 20)
    res = asyncio.run(grade_workspace(task, ws, 1, tmp_path / "art"))
    assert res.error is None and res.reward == 0.0
    assert "could not be deployed" in res.notes[0]


def test_third_party_tasks_come_from_the_entry_point_group(tmp_path: Path) -> None:
    """A real installed distribution (a dist-info on sys.path) registering a task folder."""
    import subprocess
    import sys
    import textwrap

    site = tmp_path / "site"
    (site / "acme_tasks").mkdir(parents=True)
    make_task(site / "acme_tasks", name="demo-task")
    (site / "acme_tasks" / "__init__.py").write_text(
        "from pathlib import Path\nTASK_DIR = Path(__file__).parent / 'demo-task'\n")
    dist = site / "acme_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[infragym.tasks]\ndemo-task = acme_tasks\n")
    code = textwrap.dedent("""
        from infragym.tasks import find_task, list_tasks
        print(sorted(t.name for t in list_tasks()))
        print(find_task("demo-task").path.name)
    """)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "'demo-task'" in r.stdout and "'kv-replicated'" in r.stdout
    assert r.stdout.strip().endswith("demo-task")


def test_the_contract_env_is_rendered_per_host_and_checked(tmp_path: Path) -> None:
    contract = ('\n[contract.env]\nNODE_ID = "{node_id}"\nPEERS = "{peers}"\n'
                'PORT = "8080"\nME = "{{{address}}}"\n')
    t = load_task(make_task(tmp_path / "a", GOOD_TOML + contract))
    hosts = {"n1": "198.18.0.1", "n2": "198.18.0.2"}
    assert t.spec.host_env("n2", hosts) == {
        "NODE_ID": "n2", "PEERS": "n1=198.18.0.1,n2=198.18.0.2", "PORT": "8080",
        "ME": "{198.18.0.2}"}
    assert load_task(make_task(tmp_path / "b")).spec.host_env("n1", hosts) == {}
    bad = ('\n[contract]\nother = 1\n[contract.env]\nA = "{nodeid}"\nB = 8080\n'
           '"1X" = "y"\nC = "{address!r}"\nD = "{"\n')
    text = "\n".join(validate_layout(make_task(tmp_path / "c", GOOD_TOML + bad)))
    for fragment in ("unknown key 'other' in [contract]", "contract.env.A = '{nodeid}': "
                     "unknown placeholder {nodeid}", "contract.env.B must be a string",
                     "contract.env.1X: not a valid environment variable name",
                     "unknown placeholder {address}", "contract.env.D = '{'"):
        assert fragment in text, f"{fragment!r} not reported in:\n{text}"
    assert find_task("kv-replicated").spec.contract_env["PORT"] == "{port}"  # a variant key


def test_kv_replicated_declares_the_contract_its_grader_gives_production_hosts() -> None:
    """The dev hosts' [contract.env] and the grader's contract must not drift apart, in
    any variant (3 or 5 hosts, their names, the port)."""
    import importlib.util
    from types import SimpleNamespace

    task = find_task("kv-replicated")
    spec = importlib.util.spec_from_file_location("kv_grader_contract_check", task.grader_path)
    assert spec is not None and spec.loader is not None
    grader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grader)
    for seed in (None, 1, 3, 4, 7):
        variant = task.spec.variant(seed)
        hosts = [SimpleNamespace(name=n, address=f"198.18.4.{i}")
                 for i, n in enumerate(variant.host_names, 1)]
        cluster = SimpleNamespace(hosts=hosts, subnet="198.18.4.0/24")
        addresses = {h.name: h.address for h in hosts}
        contract = grader.service(variant).contract
        assert contract.port == variant["port"]
        for h in hosts:
            assert task.spec.host_env(h.name, addresses, variant) == contract.env(cluster, h)
