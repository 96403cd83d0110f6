"""A tiny task for tests that need an episode but not a built-in task: "write 42 to
answer.txt". Its graders are small and fast, so the tests measure the harness, not a task."""

from __future__ import annotations

from pathlib import Path

TASK_TOML = """
name = "{name}"
summary = "Write the answer to a file."
[topology]
hosts = 1
dev_hosts = {dev_hosts}
[limits]
max_steps = {max_steps}
agent_wall_s = {wall}
command_timeout_s = {command_timeout}
[grading]
budget_s = 60
"""

# deployed by the contract: the workspace is at /srv/app on a fresh production host
DEPLOYED_GRADER = """
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    host = ctx.cluster(1).hosts[0]
    r = host.run(["sh", "-c", "cat /srv/app/answer.txt 2>/dev/null"], timeout=10)
    ok = r.stdout.strip() == b"42"
    result = CheckResult("answer", Verdict.PASS if ok else Verdict.FAIL, float(ok), "answer")
    reward = Rubric([Criterion("answer")]).score({"answer": result})
    return GradeOutcome(reward, reward.reward, notes=[f"seed {ctx.seed}"])
"""

# like DEPLOYED_GRADER, but first runs the workspace's start.sh on the host, as a real task
# starts the agent's system; the notes name the grading cluster (to check it left nothing)
STARTING_GRADER = """
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    c = ctx.cluster(1)
    host = c.hosts[0]
    host.run(["sh", "-c", "[ ! -f start.sh ] || sh start.sh"], timeout=30, cwd="/srv/app")
    r = host.run(["sh", "-c", "cat /srv/app/answer.txt 2>/dev/null"], timeout=10)
    ok = r.stdout.strip() == b"42"
    result = CheckResult("answer", Verdict.PASS if ok else Verdict.FAIL, float(ok), "answer")
    reward = Rubric([Criterion("answer")]).score({"answer": result})
    return GradeOutcome(reward, reward.reward, notes=[f"cluster {c.run_id}"])
"""

# reads the submitted workspace directly: no cluster, so grading takes milliseconds
WORKSPACE_GRADER = """
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    p = ctx.workspace / "answer.txt"
    ok = p.exists() and p.read_text().strip() == "42"
    res = CheckResult("answer", Verdict.PASS if ok else Verdict.FAIL, float(ok), "answer")
    return GradeOutcome(Rubric([Criterion("answer")]).score({"answer": res}), float(ok))
"""

# a reward that depends on the seed ((seed % 4 + 1) / 4 for the answer 42), so "the same
# rewards" means something; seeds up to slow_until sleep sleep_s in their grading (to be
# killed in the middle of one), and seed fail raises (a platform failure)
_SEEDED_GRADER = """
import asyncio
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    if ctx.seed == {fail}:
        raise RuntimeError("grader bug on seed {fail}")
    if ctx.seed <= {slow_until}:
        await asyncio.sleep({sleep_s})
    p = ctx.workspace / "answer.txt"
    ok = p.exists() and p.read_text().strip() == "42"
    score = (ctx.seed % 4 + 1) / 4 if ok else 0.0
    res = CheckResult("answer", Verdict.PASS if ok else Verdict.FAIL, score, "")
    return GradeOutcome(Rubric([Criterion("answer")]).score({{"answer": res}}), score)
"""


def seeded_grader(*, sleep_s: float, slow_until: int, fail: int = -1) -> str:
    return _SEEDED_GRADER.format(sleep_s=sleep_s, slow_until=slow_until, fail=fail)


def tiny_task(
    root: Path,
    *,
    name: str = "tiny",
    dev_hosts: int = 1,
    max_steps: int = 50,
    wall: float = 300,
    command_timeout: float = 10,
    grader: str = DEPLOYED_GRADER,
) -> Path:
    """A complete task folder under ``root``: task.toml, instructions, starter workspace,
    grader and a robust solution."""
    d = root / name
    (d / "workspace").mkdir(parents=True)
    (d / "solutions" / "robust").mkdir(parents=True)
    (d / "task.toml").write_text(TASK_TOML.format(
        name=name, dev_hosts=dev_hosts, max_steps=max_steps, wall=wall,
        command_timeout=command_timeout))
    (d / "instructions.md").write_text("Write 42 to answer.txt in your workspace.\n")
    (d / "workspace" / "README").write_text("starter file\n")
    (d / "grader.py").write_text(grader)
    (d / "solutions" / "robust" / "answer.txt").write_text("42\n")
    return d
