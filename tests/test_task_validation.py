"""Bands in ``task.toml`` and the validation that grades every tier against them.

The tiny task's workspace grader takes milliseconds, so these tests measure validation,
not a task; ``tests/test_builtin_tasks.py`` runs ``check_task`` on the built-in tasks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym.tasks import Band, load_task, validate_layout
from infragym.testing import check_task, static_problems

BANDS = """
[validation]
seeds = [1, 2]
max_spread = 0.05
[validation.bands]
robust = { min = 0.9 }
starter = { max = 0.0 }
"""


def banded_task(root: Path, bands: str = BANDS) -> Path:
    d = tiny_task(root, grader=WORKSPACE_GRADER)
    with (d / "task.toml").open("a") as f:
        f.write(bands)
    return d


def test_bands_are_read_from_task_toml(tmp_path: Path) -> None:
    spec = load_task(banded_task(tmp_path)).spec.validation
    assert spec.seeds == (1, 2) and spec.max_spread == 0.05
    assert spec.bands == {"robust": Band(0.9, 1.0), "starter": Band(0.0, 0.0)}
    assert 0.95 in spec.bands["robust"] and 0.5 not in spec.bands["robust"]
    assert None not in spec.bands["starter"]


def test_every_bad_band_is_reported_at_once(tmp_path: Path) -> None:
    bad = """
[validation]
seeds = [1, 1]
max_spread = 2
colour = "red"
[validation.bands]
robust = { min = 0.9, max = 0.1 }
naive = { ceiling = 0.4 }
ghost = { max = 0.1 }
"""
    problems = "\n".join(validate_layout(banded_task(tmp_path, bad)))
    for fragment in (
        "seeds must be a non-empty list of distinct",
        "max_spread must be a number in [0, 1]",
        "unknown key 'colour'",
        "bands.robust: need 0 <= min <= max <= 1",
        "bands.naive: write { min = X }",
        "names 'ghost', but there is no solutions/ghost/",
    ):
        assert fragment in problems, f"{fragment!r} not reported in:\n{problems}"


def test_check_task_passes_a_task_whose_tiers_are_in_band(tmp_path: Path) -> None:
    report = check_task(banded_task(tmp_path), seeds=(1, 2))
    rows = {r.tier: r for r in report.rows}
    assert rows["robust"].rewards == {1: 1.0, 2: 1.0}
    assert rows["starter"].rewards == {1: 0.0, 2: 0.0}
    assert report.ok


def test_check_task_names_every_tier_out_of_its_band(tmp_path: Path) -> None:
    d = banded_task(tmp_path, BANDS.replace("starter = { max = 0.0 }", "starter = { min = 0.5 }"))
    (d / "solutions" / "robust" / "answer.txt").write_text("41\n")
    (d / "solutions" / "unstated").mkdir()
    with pytest.raises(AssertionError) as err:
        check_task(d, seeds=(1,))
    text = str(err.value)
    assert "robust seed 1: reward 0.000 is outside its band >= 0.9" in text
    assert "starter seed 1: reward 0.000 is outside its band >= 0.5" in text
    assert "unstated: no band in task.toml" in text


def test_a_grader_that_does_not_import_is_a_static_problem(tmp_path: Path) -> None:
    d = banded_task(tmp_path)
    (d / "grader.py").write_text("async def grade(ctx):\n    return (\n")
    problems = static_problems(load_task(d))
    assert any("grader.py does not compile" in p for p in problems), problems
    with pytest.raises(AssertionError, match="does not compile"):
        check_task(d)


def test_validate_tiers_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from infragym.cli.main import main

    d = banded_task(tmp_path)
    assert main(["validate", str(d), "--tiers", "--seeds", "1-2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["seeds"] == [1, 2]
    assert report["variants"] == {"1": {}, "2": {}}  # the variant each seed drew: none here
    assert {t["tier"]: t["rewards"] for t in report["tiers"]} == {
        "robust": {"1": 1.0, "2": 1.0},
        "starter": {"1": 0.0, "2": 0.0},
    }
    (d / "solutions" / "robust" / "answer.txt").write_text("0\n")
    assert main(["validate", str(d), "--tiers", "--seeds", "3", "--tier", "robust"]) == 1
    err = capsys.readouterr().err
    assert "robust seed 3: reward 0.000 is outside its band >= 0.9" in err


def test_probes_of_the_catalogue_are_graded_as_tiers(tmp_path: Path) -> None:
    bands = BANDS.replace("[validation.bands]", 'probes = ["always-200"]\n[validation.bands]')
    d = banded_task(tmp_path, bands + "always-200 = { max = 0.0 }\n")
    report = check_task(d, seeds=(1,))
    assert {r.tier: r.rewards for r in report.rows}["always-200"] == {1: 0.0}
    bad = banded_task(tmp_path / "bad", bands.replace("always-200", "always-418"))
    assert any("no hack probe 'always-418'" in p for p in validate_layout(bad))


def test_a_grading_withheld_as_overloaded_is_graded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate_tiers retries what the machine was too busy to measure, as the Env does;
    one still overloaded after the retries is an error in the report, never a reward."""
    import asyncio

    import infragym.testing._check_task as ct
    from infragym.grading import GradeResult

    real = ct.grade_workspace
    calls: list[str] = []

    async def busy_first(task, ws, seed, where, *a, **kw):  # type: ignore[no-untyped-def]
        calls.append(Path(where).name)
        if len(calls) == 1 or "starter" in str(where):
            return GradeResult(task=task.name, seed=seed, reward=None, overloaded=True,
                               error="grading overloaded: CPU stall 99%")
        return await real(task, ws, seed, where, *a, **kw)

    async def no_wait(max_wait_s: float = 0.0) -> float:
        return 0.0

    monkeypatch.setattr(ct, "grade_workspace", busy_first)
    monkeypatch.setattr(ct, "wait_for_calm", no_wait)
    task = load_task(banded_task(tmp_path))
    report = asyncio.run(ct.validate_tiers(task, (1,), ["robust", "starter"], retries=1))
    rows = {r.tier: r for r in report.rows}
    assert rows["robust"].rewards == {1: 1.0}, calls
    assert calls[:2] == ["robust-seed1", "robust-seed1-retry1"]
    assert rows["starter"].rewards == {1: None} and "overloaded" in rows["starter"].errors[1]
    assert calls.count("starter-seed1") + calls.count("starter-seed1-retry1") == 2
