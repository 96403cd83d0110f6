"""Reference solutions as overlays on the starter workspace or on another tier."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from infragym import ConfigError
from infragym.tasks import load_task, validate_layout
from infragym.tasks._validate import validate_task
from tests.test_tasks import make_task


def files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def layered(tmp_path: Path) -> Path:
    d = make_task(tmp_path)
    (d / "workspace" / "app").mkdir()
    (d / "workspace" / "app" / "server.py").write_text("provided app\n")
    (d / "workspace" / "start.sh").write_text("echo starter\n")
    sols = d / "solutions"
    (sols / "naive" / "lb").mkdir(parents=True)
    (sols / "naive" / "solution.toml").write_text('base = "workspace"\n')
    (sols / "naive" / "lb" / "render.py").write_text("render\n")
    (sols / "naive" / "start.sh").write_text("echo naive\n")
    (sols / "robust" / "solution.toml").write_text('base = "naive"\nremove = ["lb/render.py"]\n')
    (sols / "robust" / "lb").mkdir()
    (sols / "robust" / "lb" / "monitor.py").write_text("monitor\n")
    (sols / "robust" / "start.sh").write_text("echo robust\n")
    os.chmod(sols / "robust" / "start.sh", 0o755)
    (sols / "whole").mkdir()
    (sols / "whole" / "start.sh").write_text("echo whole\n")
    return d


def test_a_tier_is_its_bases_files_minus_removed_plus_its_own(tmp_path: Path) -> None:
    task = load_task(layered(tmp_path))
    assert files(task.solution("naive")) == {
        "app/server.py": "provided app\n",
        "lb/render.py": "render\n",
        "start.sh": "echo naive\n",
    }
    robust = task.solution("robust")
    assert files(robust) == {
        "app/server.py": "provided app\n",
        "lb/monitor.py": "monitor\n",
        "start.sh": "echo robust\n",
    }
    assert os.stat(robust / "start.sh").st_mode & 0o111  # the mode comes along
    assert not (robust / "solution.toml").exists()
    # a folder without solution.toml is a whole workspace, used where it stands
    assert task.solution("whole") == task.path / "solutions" / "whole"
    # the build is private to this user
    assert os.stat(robust.parent.parent).st_mode & 0o777 == 0o700


def test_an_edited_layer_gives_a_fresh_build(tmp_path: Path) -> None:
    task = load_task(layered(tmp_path))
    first = task.solution("robust")
    assert task.solution("robust") == first  # built once per content
    (task.path / "workspace" / "app" / "server.py").write_text("a new app\n")
    second = task.solution("robust")
    assert second != first
    assert (second / "app" / "server.py").read_text() == "a new app\n"
    assert (first / "app" / "server.py").read_text() == "provided app\n"  # untouched


def test_concurrent_builds_agree(tmp_path: Path) -> None:
    task = load_task(layered(tmp_path))
    (task.path / "workspace" / "x").write_text("x" * 100_000)  # a build that takes a while
    got: list[Path] = []
    threads = [
        threading.Thread(target=lambda: got.append(task.solution("robust"))) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1
    assert files(got[0])["start.sh"] == "echo robust\n"
    leftovers = [p.name for p in got[0].parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('base = "nope"\n', "base 'nope' is neither a tier"),
        ('base = "b"\n', "go round in a circle: a -> b -> a"),
        ("base = [\n", "not valid TOML"),
        ('base = "workspace"\nextra = 1\n', "unknown key 'extra'"),
        ('base = "workspace"\nremove = ["../../etc/passwd"]\n', "must be a relative path"),
        ('base = "workspace"\nremove = "x"\n', "remove must be a list"),
        ("remove = []\n", "base must name another tier"),
    ],
)
def test_bad_overlays_are_reported_on_load(tmp_path: Path, toml: str, problem: str) -> None:
    d = make_task(tmp_path)
    (d / "solutions" / "a").mkdir()
    (d / "solutions" / "a" / "solution.toml").write_text(toml)
    (d / "solutions" / "b").mkdir()
    (d / "solutions" / "b" / "solution.toml").write_text('base = "a"\n')
    problems = validate_layout(d)
    assert any(problem in p for p in problems), problems
    with pytest.raises(ConfigError, match="invalid"):
        load_task(d)


def test_removing_what_the_base_lacks_is_an_error_naming_the_tier(tmp_path: Path) -> None:
    d = make_task(tmp_path)
    (d / "solutions" / "a").mkdir()
    (d / "solutions" / "a" / "solution.toml").write_text('base = "workspace"\nremove = ["x"]\n')
    task = load_task(d)
    with pytest.raises(ConfigError, match=r"solutions/a/solution\.toml: remove names 'x'"):
        task.solution("a")


def test_validate_checks_the_start_script_of_the_overlaid_files(tmp_path: Path) -> None:
    d = layered(tmp_path)
    (d / "grader.py").write_text(
        'START_CMD = ("/bin/sh", "/srv/app/start.sh")\nasync def grade(ctx):\n    pass\n'
    )
    (d / "solutions" / "robust" / "start.sh").unlink()
    assert validate_task(d) == []  # robust inherits naive's start.sh
    (d / "solutions" / "naive" / "solution.toml").write_text(
        'base = "workspace"\nremove = ["start.sh"]\n'
    )
    (d / "solutions" / "naive" / "start.sh").unlink()
    problems = validate_task(d)
    assert any("solutions/naive/ has no start.sh" in p for p in problems), problems
    assert any("solutions/robust/ has no start.sh" in p for p in problems), problems
