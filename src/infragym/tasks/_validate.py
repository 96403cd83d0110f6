"""``infragym validate``: every problem of a task folder at once, its grader included.

Beyond :func:`validate_layout` (the spec and the files, checked on every load), this
imports the grader as grading will and checks what grading calls: ``async def
grade(ctx)``. A grader that deploys the workspace by a start script names it in
``START_CMD`` (the argv grading runs on each host, e.g. ``("/bin/sh",
"/srv/app/start.sh")``); every ``/srv/app/`` path in it must then be a file of the starter
workspace and of every reference solution, since grading deploys either as it stands.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import sys
import traceback
import uuid
from pathlib import Path
from types import ModuleType

from ._solutions import materialize_solution
from ._spec import GRADE_MISSING, parse_spec, validate_layout

APP_DIR = "/srv/app/"


def _import_grader(path: Path, problems: list[str]) -> ModuleType | None:
    """The grader module, imported under a private name; None (and why) if it fails."""
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as exc:
        problems.append(
            f"grader.py does not compile: {exc.msg} (line {exc.lineno}): {(exc.text or '').strip()}"
        )
        return None
    except ValueError as exc:  # NUL bytes
        problems.append(f"grader.py does not compile: {exc}")
        return None
    name = f"infragym_validate_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        problems.append(f"grader.py cannot be loaded from {path}")
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as grading does: dataclasses look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        why = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        problems.append(f"grader.py fails on import: {why}")
        return None
    finally:
        sys.modules.pop(name, None)
    return module


def _grade_problems(module: ModuleType, name: str = "grade") -> list[str]:
    fn = getattr(module, name, None)
    if fn is None or not asyncio.iscoroutinefunction(fn):
        return [GRADE_MISSING.replace("grade(", f"{name}(")]
    try:
        inspect.signature(fn).bind(object())
    except TypeError:
        return [f"grader.py: {name}{inspect.signature(fn)} must take one argument, the ctx"]
    except ValueError:
        pass  # no signature to inspect (a builtin): grading will tell
    return []


def _start_files(module: ModuleType, problems: list[str]) -> list[str]:
    """The workspace files ``START_CMD`` runs (relative to the workspace)."""
    cmd = getattr(module, "START_CMD", None)
    if cmd is None:
        return []
    if isinstance(cmd, str) or not all(isinstance(a, str) for a in cmd):
        problems.append(f"grader.py: START_CMD must be a sequence of strings, not {cmd!r}")
        return []
    return [a[len(APP_DIR) :] for a in cmd if a.startswith(APP_DIR) and len(a) > len(APP_DIR)]


def validate_task(path: str | Path) -> list[str]:
    """Every problem of the task folder ``path``: its layout and spec, whether its grader
    imports and defines ``async def grade(ctx)``, and whether the starter workspace and
    every solution hold the files the grader's ``START_CMD`` deploys. Empty when valid."""
    path = Path(path)
    problems = validate_layout(path)
    grader = path / "grader.py"
    if not grader.is_file():
        return problems
    found: list[str] = []
    module = _import_grader(grader, found)
    spec = parse_spec(path / "task.toml", [])
    if module is not None and spec is not None and spec.operate is not None:
        for ph in spec.operate.phases:
            found += _grade_problems(module, ph.grader)
        if spec.operate.weights.get("audit", 0) > 0:
            found += _grade_problems(module, "audit")
    elif module is not None:
        found += _grade_problems(module)
        start = _start_files(module, found)
        cmd = " ".join(getattr(module, "START_CMD", ()) or ())
        sols = path / "solutions"
        trees = [("the starter workspace/", path / "workspace")]
        if not problems:  # overlays are built only from a valid folder
            trees += [
                (f"solutions/{p.name}/", materialize_solution(path, p.name, path.name))
                for p in (sorted(sols.iterdir()) if sols.is_dir() else [])
                if p.is_dir()
            ]
        for rel in start:
            for label, tree in trees:
                if tree.is_dir() and not (tree / rel).is_file():
                    found.append(
                        f"{label} has no {rel}: grading runs `{cmd}` (START_CMD of grader.py) "
                        "on every host, so the system would not start"
                    )
    return problems + [p for p in found if p not in problems]
