"""Many episodes at once: same rewards as one at a time, isolation, nothing left behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_no_namespaces_left, needs_root
from tinytask import tiny_task

from infragym import ConfigError, rollout_many
from infragym.agent import noop_agent, reference_agent
from infragym.runner import Summary
from infragym.sandbox import _state, cleanup
from infragym.sandbox._sys import list_netns
from infragym.tasks import find_task

SEEDS = list(range(1, 5))  # four at once: every slot of concurrency 4 busy


@needs_root
def test_four_episodes_at_concurrency_4_match_one_at_a_time(tmp_path: Path) -> None:
    task = find_task("kv-replicated")
    before = set(list_netns())

    def run(concurrency: int) -> dict[int, float | None]:
        outs = asyncio.run(rollout_many("kv-replicated", lambda: reference_agent(task, "robust"),
                                        SEEDS, concurrency,
                                        artifacts_dir=tmp_path / f"c{concurrency}"))
        assert [o.seed for o in outs] == SEEDS
        assert all(o.error is None and o.end_reason == "submit" for o in outs)
        for o in outs:  # what explains a difference, should there be one
            grades[concurrency, o.seed] = (
                None if o.grade is None or o.grade.detail is None else {
                    "short": [c.explanation for c in o.grade.detail.breakdown if c.score < 1],
                    "health": o.grade.health})
        return {o.seed: o.reward for o in outs}

    grades: dict[tuple[int, int], object] = {}
    together = run(4)
    alone = run(1)
    for seed in SEEDS:
        a, b = together[seed], alone[seed]
        assert a is not None and b is not None
        assert abs(a - b) <= 0.05, (
            f"seed {seed}: {a} at concurrency 4, {b} alone; at 4: {grades[4, seed]}; "
            f"alone: {grades[1, seed]}")
    assert min(alone.values()) >= 0.85  # type: ignore[type-var]
    assert_no_namespaces_left(before)
    assert not [r for r in _state.all_records() if r.owner_pid == os.getpid()]
    assert not cleanup().removed_anything


GRADER = """
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    if ctx.seed == 2:
        raise RuntimeError("grader bug on seed 2")
    res = CheckResult("ok", Verdict.PASS, 1.0, "fine")
    return GradeOutcome(Rubric([Criterion("ok")]).score({"ok": res}), 1.0)
"""


@needs_root
def test_a_platform_failure_is_recorded_for_its_seed_and_the_others_carry_on(
        tmp_path: Path) -> None:
    d = tiny_task(tmp_path, dev_hosts=0, grader=GRADER)
    done: list[int] = []
    outs = asyncio.run(rollout_many(str(d), noop_agent, [1, 2, 3], 3,
                                    artifacts_dir=tmp_path / "art",
                                    on_done=lambda o: done.append(o.seed)))
    by_seed = {o.seed: o for o in outs}
    assert by_seed[2].reward is None and "grader bug on seed 2" in (by_seed[2].error or "")
    assert by_seed[1].reward == 1.0 and by_seed[3].reward == 1.0
    assert sorted(done) == [1, 2, 3]
    s = Summary.of(outs)
    assert (s.episodes, s.errors, s.mean, s.min, s.max) == (3, 1, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"seeds": []}, "at least one seed"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"seeds": [1], "max_concurrency": 0}, "max_concurrency"),
    ({"seeds": [1], "task": "no-such-task"}, "no task"),
    ({"seeds": [1], "backend": "dask"}, "backend must be 'local' or 'ray'"),
    ({"seeds": [1], "ray_address": "auto"}, "ray_address is for backend='ray'"),
    ({"seeds": [1], "backend": "ray", "max_retries": -1}, "max_retries must be"),
])
def test_bad_rollout_requests(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, Any] = {"task": "kv-replicated", "max_concurrency": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        asyncio.run(rollout_many(args.pop("task"), noop_agent, args.pop("seeds"),
                                 args.pop("max_concurrency"), **args))
