"""Grade a workspace: isolate it, run the task's hidden grader, record the result.

The grader runs under the task's budget. An :class:`~infragym.InfraGymError` raised by the
platform (a cluster that cannot be built, say) or any exception from the grader is a
platform failure: the result carries ``error`` and no reward, never a reward of 0. So is a
grading whose machine was overloaded during its load window (``_health``): its reward is
withheld (kept as ``withheld_reward`` for diagnosis) and ``overloaded`` is set.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import cast

from .._errors import ConfigError
from ..tasks import Task
from ._context import GradeContext, GradeOutcome
from ._health import Monitor, judge
from ._result import GradeResult

GradeFn = Callable[[GradeContext], Awaitable[GradeOutcome]]
MAX_WORKSPACE_BYTES = 64 << 20


def load_grader(task: Task) -> GradeFn:
    """Import the task's hidden ``grader.py`` under a private module name."""
    name = f"infragym_grader_{task.name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, task.grader_path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {task.grader_path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    # registered before running, as a normal import is: dataclasses and pickling look
    # the module up by name while it executes
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    fn = getattr(module, "grade", None)
    if fn is None or not asyncio.iscoroutinefunction(fn):
        raise ConfigError(f"{task.grader_path} must define `async def grade(ctx)`")
    return cast(GradeFn, fn)


def copy_workspace(src: Path, dest: Path) -> None:
    """Copy the agent's workspace, refusing what no deployment needs (devices, huge trees)."""
    total = 0
    for p in src.rglob("*"):
        if p.is_symlink():
            continue
        if not (p.is_file() or p.is_dir()):
            raise ConfigError(
                f"{p.relative_to(src)} is neither a file nor a directory "
                "(a FIFO, socket or device cannot be deployed)"
            )
        if p.is_file():
            st = p.stat()
            total += max(st.st_size, st.st_blocks * 512)
            if total > MAX_WORKSPACE_BYTES:
                raise ConfigError(
                    f"the workspace is larger than {MAX_WORKSPACE_BYTES >> 20} MiB; "
                    "remove build artefacts and data files before submitting"
                )
    # symlinks are copied as links: they resolve inside the host's view, not the grader's
    shutil.copytree(src, dest, symlinks=True)


async def grade_workspace(
    task: Task,
    workspace: str | Path,
    seed: int,
    artifacts_dir: str | Path,
    progress: Callable[[str], None] = lambda msg: None,
) -> GradeResult:
    """Grade ``workspace`` for ``task`` with ``seed``; artifacts go to ``artifacts_dir``."""
    workspace = Path(workspace)
    artifacts = Path(artifacts_dir)
    artifacts.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    grader = load_grader(task)
    if not workspace.is_dir():
        raise ConfigError(f"workspace {workspace} is not a directory")
    with tempfile.TemporaryDirectory(prefix="infragym-grade-") as tmp:
        copy = Path(tmp) / "workspace"
        try:
            copy_workspace(workspace, copy)
        except (ConfigError, OSError, RecursionError, shutil.Error) as exc:
            # what the agent left cannot be deployed (too big, a FIFO, a tree too deep):
            # that is the agent's result, so it scores 0; it is not a platform failure
            return GradeResult(
                task=task.name,
                seed=seed,
                reward=0.0,
                functional=0.0,
                artifacts_dir=str(artifacts),
                timings={"total_s": time.monotonic() - t0},
                notes=[f"the workspace could not be deployed: {str(exc)[:500]}"],
            )
        ctx = GradeContext(
            task.name, seed, copy, artifacts, task.spec.grading_budget_s, progress=progress
        )
        ctx.history.meta.update({"task": task.name, "seed": seed})
        error: str | None = None
        outcome: GradeOutcome | None = None
        monitor = Monitor()
        run_start = time.monotonic()
        try:
            async with monitor:
                outcome = await asyncio.wait_for(grader(ctx), timeout=task.spec.grading_budget_s)
        except TimeoutError:
            error = (
                f"the grader exceeded its budget of {task.spec.grading_budget_s:.0f} s "
                "(a grader bug: graders must bound their own work)"
            )
        except Exception as exc:
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        finally:
            run = (run_start, time.monotonic())
            timings["grade_s"] = time.monotonic() - t0
            try:
                await asyncio.to_thread(ctx.close)
            except Exception as exc:
                error = error or f"cluster teardown failed: {exc}"
            timings["total_s"] = time.monotonic() - t0
    history_path = ctx.history.write_jsonl(artifacts / "history.jsonl")
    health = judge(ctx.history, ctx.clock.t0, monitor, run=run)
    health_dict = health.to_dict() if health is not None else None
    timeline = [
        {
            "time": e.time,
            "fault": e.fault,
            "action": e.action.value,
            "label": e.label,
            "targets": list(e.targets),
        }
        for e in ctx.history.faults
    ]
    if error is not None or outcome is None:
        return GradeResult(
            task=task.name,
            seed=seed,
            reward=None,
            timeline=timeline,
            history_path=str(history_path),
            artifacts_dir=str(artifacts),
            timings=timings,
            error=(error or "the grader returned nothing")
            + (f" ({health.reason})" if health is not None and health.overloaded else ""),
            overloaded=health is not None and health.overloaded,
            health=health_dict,
        )
    if health is not None and health.overloaded:
        return GradeResult(
            task=task.name,
            seed=seed,
            reward=None,
            breakdown={c.name: c.score for c in outcome.reward.breakdown},
            detail=outcome.reward,
            timeline=timeline,
            history_path=str(history_path),
            artifacts_dir=str(artifacts),
            timings=timings,
            notes=outcome.notes,
            error=health.reason,
            overloaded=True,
            health=health_dict,
            withheld_reward=outcome.reward.reward,
        )
    return GradeResult(
        task=task.name,
        seed=seed,
        reward=outcome.reward.reward,
        functional=outcome.functional,
        breakdown={c.name: c.score for c in outcome.reward.breakdown},
        detail=outcome.reward,
        timeline=timeline,
        history_path=str(history_path),
        artifacts_dir=str(artifacts),
        timings=timings,
        notes=outcome.notes,
        health=health_dict,
    )
