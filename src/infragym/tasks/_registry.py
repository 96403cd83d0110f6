"""Where tasks come from: built-in ones ship in this package, others via entry points.

A third-party package registers a task folder under the entry point group
``infragym.tasks``: the entry point's value is a module whose ``TASK_DIR`` (or a callable
returning it) is the task folder.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from .._errors import ConfigError
from ._spec import LOADED_DIRS, Task, load_task

BUILTIN_DIR = Path(__file__).parent / "builtin"
ENTRY_POINT_GROUP = "infragym.tasks"


def _entry_point_dirs() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(f"task entry point {ep.name!r} cannot be loaded: {exc}") from exc
        target = getattr(obj, "TASK_DIR", obj)
        if callable(target):
            target = target()
        out[ep.name] = Path(str(target))
    return out


def task_dirs() -> dict[str, Path]:
    dirs = (
        {
            p.name: p
            for p in sorted(BUILTIN_DIR.iterdir())
            if p.is_dir() and (p / "task.toml").exists()
        }
        if BUILTIN_DIR.exists()
        else {}
    )
    for name, path in _entry_point_dirs().items():
        dirs.setdefault(name, path)
    return dirs


def hidden_paths(*also: str | Path) -> list[Path]:
    """Every path that no sandbox may show: the agent's workstation, its dev hosts and a
    grading cluster all hide the same list, so a grader or solution is never in sight.

    That is every task folder this process knows of (graders and reference solutions live
    there): the built-in ones, those registered under the ``infragym.tasks`` entry point
    group (a third-party package may install them under ``/usr``, which sandboxes see),
    every folder loaded by path, and ``also`` (the current task's folder, should its
    :class:`Task` have come from another process). A broken entry point is a ConfigError
    rather than a task left visible. The sandbox hides the data root and run state itself.
    """
    out: list[Path] = []
    for p in [BUILTIN_DIR, *task_dirs().values(), *sorted(LOADED_DIRS), *map(Path, also)]:
        rp = p.resolve()
        if rp not in out:
            out.append(rp)
    return out


def list_tasks() -> list[Task]:
    return [load_task(p) for p in task_dirs().values()]


def find_task(name_or_path: str) -> Task:
    """A task by name (built-in or entry point) or by the path of its folder."""
    p = Path(name_or_path)
    if p.is_dir() and (p / "task.toml").exists():
        return load_task(p)
    dirs = task_dirs()
    if name_or_path in dirs:
        return load_task(dirs[name_or_path])
    raise ConfigError(
        f"no task {name_or_path!r}; known tasks: {', '.join(dirs) or 'none'} "
        "(or give the path of a task folder)"
    )
