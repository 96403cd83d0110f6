"""Where tasks come from: built-in ones ship in this package, others via entry points.

A third-party package registers a task folder under the entry point group
``infragym.tasks``: the entry point's value is a module whose ``TASK_DIR`` (or a callable
returning it) is the task folder.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from .._errors import ConfigError
from ._spec import Task, load_task

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
