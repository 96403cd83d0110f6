"""Task packages: ``[requires] apt`` in task.toml, readiness, and the platform error a task
whose packages are missing gives at once (never a reward of 0)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import needs_root
from tinytask import tiny_task

import infragym
from infragym import CapabilityError
from infragym.env import Env
from infragym.runner import rollout_many
from infragym.sandbox import Cluster
from infragym.tasks import list_tasks, load_task, validate_layout
from infragym.testing import validate_tiers

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "tasks" / "needs-haproxy" / "task.toml"
NO_SUCH = "infragym-no-such-package"
HAPROXY = ["haproxy"] if shutil.which("haproxy") else []
needs_haproxy = pytest.mark.skipif(
    not HAPROXY,
    reason="haproxy is not installed: `./setup.sh test` installs it (tests/tasks/needs-haproxy "
    "declares it), or run apt-get install -y --no-install-recommends haproxy",
)


def _task(root: Path, apt: list[str], name: str = "tiny") -> Path:
    d = tiny_task(root, name=name)
    listed = ", ".join(f'"{p}"' for p in apt)
    with (d / "task.toml").open("a") as f:
        f.write(f"[requires]\napt = [{listed}]\n")
    return d


def _fixture_packages() -> list[str]:
    apt = tomllib.loads(FIXTURE.read_text())["requires"]["apt"]
    assert isinstance(apt, list)
    return [str(p) for p in apt]


def test_requires_is_parsed_and_every_problem_reported(tmp_path: Path) -> None:
    good = load_task(_task(tmp_path, ["haproxy", "keepalived"], "good"))
    assert good.spec.apt == ("haproxy", "keepalived")
    assert load_task(tiny_task(tmp_path, name="plain")).spec.apt == ()
    bad = tiny_task(tmp_path, name="bad")
    with (bad / "task.toml").open("a") as f:
        f.write('[requires]\napt = ["haproxy", "Bad Name", 3, "haproxy"]\npip = ["x"]\n')
    problems = "\n".join(validate_layout(bad))
    assert "unknown key 'pip' in [requires]" in problems
    assert "'Bad Name' is not a Debian package name" in problems
    assert "3 is not a Debian package name" in problems
    assert "names 'haproxy' twice" in problems
    notlist = tiny_task(tmp_path, name="notlist")
    with (notlist / "task.toml").open("a") as f:
        f.write('[requires]\napt = "haproxy"\n')
    assert any("must be a list" in p for p in validate_layout(notlist))


@needs_haproxy
def test_readiness_with_and_without_a_missing_package(tmp_path: Path) -> None:
    ready = load_task(_task(tmp_path, _fixture_packages(), "ready"))
    assert ready.missing_packages() == ()
    ready.require_ready()
    missing = load_task(_task(tmp_path, ["haproxy", NO_SUCH], "missing"))
    assert missing.missing_packages() == (NO_SUCH,)
    with pytest.raises(CapabilityError) as exc:
        missing.require_ready()
    assert f"apt-get install -y --no-install-recommends {NO_SUCH}" in str(exc.value)
    assert "haproxy" not in str(exc.value).split("with:")[1]  # only what is missing


def test_a_task_with_missing_packages_fails_at_once_as_a_platform_error(tmp_path: Path) -> None:
    """Env.reset, validate_tiers, rollout_many and `infragym grade`: a CapabilityError
    naming the install command, before any sandbox is built or any reward is computed."""
    task = load_task(_task(tmp_path, [NO_SUCH]))
    cmd = f"apt-get install -y --no-install-recommends {NO_SUCH}"

    async def reset() -> None:
        async with Env(task) as env:
            await env.reset(seed=1)

    with pytest.raises(CapabilityError, match=re.escape(cmd)):
        asyncio.run(reset())
    with pytest.raises(CapabilityError, match=re.escape(cmd)):
        asyncio.run(validate_tiers(task, [1]))
    with pytest.raises(CapabilityError, match=re.escape(cmd)):
        asyncio.run(rollout_many(str(task.path), lambda: None, [1]))  # type: ignore[arg-type,return-value]
    r = subprocess.run(
        [sys.executable, "-m", "infragym.cli.main", "grade", str(task.path),
         "--workspace", str(task.path / "solutions" / "robust"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60, check=False, env=_env(),
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert cmd in " ".join(r.stderr.split()), r.stderr
    assert "reward" not in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "infragym.cli.main", "run", str(task.path), "--agent", "noop",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60, check=False, env=_env(),
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert cmd in " ".join(r.stderr.split()), r.stderr
    assert "episode" not in r.stdout + r.stderr  # nothing started


def _env(*front: Path) -> dict[str, str]:
    src = Path(infragym.__file__).resolve().parent.parent
    path = os.pathsep.join(str(p) for p in (*front, src))
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "1000"}  # one line per task


def test_list_and_doctor_show_each_task_ready_or_not(tmp_path: Path) -> None:
    """Two tasks of an installed distribution (entry points): one needing a package that
    does not exist, one needing nothing."""
    site = tmp_path / "site"
    (site / "acme_tasks").mkdir(parents=True)
    _task(site / "acme_tasks", [NO_SUCH], "needs-missing")
    _task(site / "acme_tasks", [], "needs-nothing")
    (site / "acme_tasks" / "__init__.py").write_text("")
    for name in ("needs_missing", "needs_nothing"):
        (site / f"{name}.py").write_text(
            "from pathlib import Path\n"
            f"TASK_DIR = Path(__file__).parent / 'acme_tasks' / '{name.replace('_', '-')}'\n"
        )
    dist = site / "acme_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[infragym.tasks]\nneeds-missing = needs_missing\nneeds-nothing = needs_nothing\n"
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "infragym.cli.main", *args], capture_output=True,
            text=True, timeout=120, check=False, env=_env(site),
        )  # fmt: skip

    listed = {t["name"]: t for t in json.loads(cli("list", "--json").stdout)}
    assert listed["needs-missing"]["ready"] is False
    assert listed["needs-missing"]["missing"] == [NO_SUCH]
    assert listed["needs-nothing"]["ready"] is True
    assert listed["kv-replicated"]["ready"] is True
    table = cli("list").stdout
    assert re.search(rf"needs-missing .*not ready: apt-get install {NO_SUCH}", table), table
    doc = cli("doctor", "--json")
    assert doc.returncode == 1, doc.stderr  # a task cannot run here
    tasks = json.loads(doc.stdout)["tasks"]
    readiness = {n: (t["ready"], t["missing"]) for n, t in tasks.items()}
    assert readiness["needs-missing"] == (False, [NO_SUCH])
    assert readiness["needs-nothing"] == (True, [])
    assert NO_SUCH in cli("doctor").stdout


@needs_root
@needs_haproxy
def test_hosts_run_the_installed_packages_binaries_read_only() -> None:
    with Cluster(1) as c:
        h = c.hosts[0]
        r = h.run(["haproxy", "-v"], timeout=30)
        assert r.returncode == 0, r.stderr
        assert b"HAProxy version" in r.stdout
        w = h.run(["sh", "-c", 'touch "$(command -v haproxy)"'], timeout=30)
        assert w.returncode != 0  # read-only, as the rest of /usr


def test_setup_sh_reads_every_tasks_requires(tmp_path: Path) -> None:
    """The reader setup.sh runs with the system python3 (before the venv exists)."""
    text = (REPO / "setup.sh").read_text()
    m = re.search(r"<<'PYEOF'\n(.*?)\nPYEOF\n", text, re.S)
    assert m, "setup.sh has no task-packages reader"
    for name, apt in (("a", '["haproxy", "keepalived"]'), ("b", '["haproxy"]'), ("c", None)):
        (tmp_path / name).mkdir()
        body = f'name = "{name}"\n' + (f"[requires]\napt = {apt}\n" if apt else "")
        (tmp_path / name / "task.toml").write_text(body)
    r = subprocess.run([sys.executable, "-c", m.group(1), str(tmp_path),
                        str(FIXTURE.parent.parent)], capture_output=True, text=True,
                       timeout=30, check=True)  # fmt: skip
    assert r.stdout.split() == ["haproxy", "keepalived"]
    assert "haproxy" in _fixture_packages()
    builtin_dir = REPO / "src" / "infragym" / "tasks" / "builtin"
    builtin = subprocess.run([sys.executable, "-c", m.group(1), str(builtin_dir)],
                             capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    want = {p for t in list_tasks() for p in t.spec.apt}
    assert set(builtin.stdout.split()) == want
