"""A second service task, written from docs/task-authoring.md alone: a durable counter on
one host (``tests/tasks/counter-durable``). ``check_task`` grades its starter, its broken,
naive and robust references, its own probe (a counter that forgets every increment but
resumes far above its old count after a crash, so it never goes backwards) and the
catalogue's probes (those built on its robust reference and the agent probes too), each
inside its band, on seed 1. It keeps the toolkit honest for a task that is not key-value
and not replicated: its own workload, checks and rubric."""

from __future__ import annotations

from pathlib import Path

from conftest import needs_root

from infragym.testing import check_task

TASK = Path(__file__).parent / "tasks" / "counter-durable"


@needs_root
def test_counter_durable_tiers_are_in_their_bands() -> None:
    report = check_task(TASK, seeds=(1,), concurrency=2)
    rewards = {r.tier: r.rewards[1] for r in report.rows}
    assert {"starter", "broken", "naive", "robust", "probe-jump-ahead"} <= set(rewards)
    # the catalogue's probes built on robust apply to a task that is not key-value (and
    # refuse-after-start passed the functional tests, or check_task would say so)
    assert {"refuse-after-start", "stale-cache", "outlive-agent", "tamper-deploy"} <= set(rewards)
    # a counter that loses acknowledged increments is capped; one that loses none is not
    assert rewards["naive"] is not None and rewards["robust"] is not None
    assert rewards["naive"] < rewards["robust"]
