"""Grade a workspace: isolate it, run the task's hidden grader, record the result.

The grader runs under the task's budget. An :class:`~infragym.InfraGymError` raised by the
platform (a cluster that cannot be built, say) or any exception from the grader is a
platform failure: the result carries ``error`` and no reward, never a reward of 0. So is a
grading whose machine was overloaded during its load window (``_health``): its reward is
withheld (kept as ``withheld_reward`` for diagnosis) and ``overloaded`` is set, unless the
graded system's own hosts burnt the CPU: then the grade stands, with a note saying so.
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
from ..sandbox import TreeError, copy_tree
from ..tasks import Task, Variant
from ._admission import Admission
from ._collector import quiet_collector
from ._context import GradeContext, GradeOutcome
from ._health import Monitor, judge
from ._result import GradeResult
from ._threads import grading_threads

GradeFn = Callable[[GradeContext], Awaitable[GradeOutcome]]
MAX_WORKSPACE_BYTES = 64 << 20
TRACEBACK_FILE = "grader-traceback.txt"  # in the artifacts, when the grader raised
LAST_FRAMES = 3  # of a grader's traceback, in the result's error
MAX_WORKSPACE_DEPTH = 64


def load_grader(task: Task) -> GradeFn:
    """Import the task's hidden ``grader.py`` under a private module name; its ``grade``."""
    module = import_grader(task)
    fn = getattr(module, "grade", None)
    if fn is None or not asyncio.iscoroutinefunction(fn):
        raise ConfigError(f"{task.grader_path} must define `async def grade(ctx)`")
    return cast(GradeFn, fn)


def import_grader(task: Task) -> ModuleType:
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
    return module


def copy_workspace(src: Path, dest: Path) -> None:
    """Copy the agent's workspace, refusing what no deployment needs (devices, huge or
    deep trees). Links are copied as links: they resolve inside the host's view, not the
    grader's. No setuid or setgid bit survives: the copy is root's."""
    try:
        copy_tree(
            src,
            dest,
            max_depth=MAX_WORKSPACE_DEPTH,
            max_bytes=MAX_WORKSPACE_BYTES,
            links=True,
            strict=True,
        )
    except TreeError as exc:
        raise ConfigError(
            f"{exc}: a deployment holds files, directories and links only, at most "
            f"{MAX_WORKSPACE_BYTES >> 20} MiB and {MAX_WORKSPACE_DEPTH} levels deep; "
            "remove build artefacts, data files, pipes and sockets before submitting"
        ) from None


def _grader_failure(exc: Exception, artifacts: Path) -> str:
    """The result's error for an exception out of the grader: what was raised, its last
    frames (innermost first) and the file in ``artifacts`` that keeps the full traceback."""
    what = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames: list[traceback.FrameSummary] = list(traceback.extract_tb(exc.__traceback__))
    # the grader's own frames: those below the pipeline's call (through asyncio.wait_for)
    ours = (__file__, asyncio.__file__.rsplit("/", 1)[0] + "/")
    outer = [
        i for i, f in enumerate(frames) if f.filename == ours[0] or f.filename.startswith(ours[1])
    ]
    if outer and outer[-1] + 1 < len(frames):
        frames = frames[outer[-1] + 1 :]
    frames = frames[-LAST_FRAMES:]
    where = " <- ".join(
        f"{Path(f.filename).name}:{f.lineno} in {f.name}"
        + (f" `{f.line.strip()[:100]}`" if f.line else "")
        for f in reversed(frames)
    )
    path = artifacts / TRACEBACK_FILE
    try:
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        kept = f"the full traceback is in {path}"
    except OSError as err:
        kept = f"the traceback could not be saved to {path}: {err}"
    return f"the grader raised {what}" + (f" at {where}" if where else "") + f"; {kept}"


async def grade_workspace(
    task: Task,
    workspace: str | Path,
    seed: int,
    artifacts_dir: str | Path,
    progress: Callable[[str], None] = lambda msg: None,
    admission: Admission | None = None,
) -> GradeResult:
    """Grade ``workspace`` for ``task`` with ``seed``; artifacts go to ``artifacts_dir``.

    The grading waits for room on the machine (``admission``, by default the machine-wide
    :class:`~infragym.grading.Admission`) before it builds anything, and holds the task's
    declared cores until its cluster is gone; the wait is not charged to the grading's
    budget and is recorded as ``timings["admission_wait_s"]``."""
    workspace = Path(workspace)
    artifacts = Path(artifacts_dir)
    artifacts.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    variant = task.spec.variant(seed)
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
                variant=variant.to_dict(),
                reward=0.0,
                functional=0.0,
                artifacts_dir=str(artifacts),
                timings={"total_s": time.monotonic() - t0},
                notes=[f"the workspace could not be deployed: {str(exc)[:500]}"],
            )
        async with (admission or Admission()).slot(
            task.spec.grading_cores, f"{task.name} seed {seed}", progress
        ) as waited:
            timings["admission_wait_s"] = waited
            t0 = time.monotonic()
            return await _grade_copy(
                task, grader, copy, seed, variant, artifacts, progress, t0, timings
            )


async def _grade_copy(
    task: Task,
    grader: GradeFn,
    copy: Path,
    seed: int,
    variant: Variant,
    artifacts: Path,
    progress: Callable[[str], None],
    t0: float,
    timings: dict[str, float],
) -> GradeResult:
    """Run the grader on the deployable ``copy`` of the workspace, then judge its health."""
    ctx = GradeContext(
        task.name,
        seed,
        copy,
        artifacts,
        task.spec.grading_budget_s,
        progress=progress,
        task_dirs=(task.path,),
        variant=variant,
    )
    ctx.history.meta.update({"task": task.name, "seed": seed, "variant": variant.to_dict()})
    error: str | None = None
    outcome: GradeOutcome | None = None
    monitor = Monitor(usage=ctx.cpu_usage_s, stalls=ctx.cpu_stall_s)
    run_start = time.monotonic()
    try:
        with grading_threads(), quiet_collector():
            async with monitor:
                outcome = await asyncio.wait_for(grader(ctx), timeout=task.spec.grading_budget_s)
    except TimeoutError:
        error = (
            f"the grader exceeded its budget of {task.spec.grading_budget_s:.0f} s "
            "(a grader bug: graders must bound their own work)"
        )
    except Exception as exc:
        error = _grader_failure(exc, artifacts)
    finally:
        run = (run_start, time.monotonic())
        timings["grade_s"] = time.monotonic() - t0
        try:
            await asyncio.to_thread(ctx.close)
        except Exception as exc:
            error = error or f"cluster teardown failed: {exc}"
        timings["total_s"] = time.monotonic() - t0
    history_path = ctx.history.write_jsonl(artifacts / "history.jsonl")
    health = judge(
        ctx.history, ctx.clock.t0, monitor, run=run, cost=task.spec.grading_cores,
        max_sut_stall=task.spec.grading_max_sut_stall,
    )  # fmt: skip
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
            variant=variant.to_dict(),
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
    # an overloaded machine's measurements cannot be trusted: the reward is withheld (kept
    # for diagnosis), and the grading is a platform failure to be graded again
    withheld = health is not None and health.overloaded
    note = [health.note] if health is not None and health.note and not withheld else []
    return GradeResult(
        task=task.name,
        seed=seed,
        variant=variant.to_dict(),
        reward=None if withheld else outcome.reward.reward,
        functional=None if withheld else outcome.functional,
        breakdown={c.name: c.score for c in outcome.reward.breakdown},
        detail=outcome.reward,
        timeline=timeline,
        history_path=str(history_path),
        artifacts_dir=str(artifacts),
        timings=timings,
        notes=[*outcome.notes, *note],
        error=health.reason if withheld and health is not None else None,
        overloaded=withheld,
        health=health_dict,
        withheld_reward=outcome.reward.reward if withheld else None,
    )
