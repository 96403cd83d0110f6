"""Reference solutions as overlays, so tiers share files instead of copying them.

A folder ``solutions/<tier>/`` is a whole workspace, unless it holds ``solution.toml``::

    base = "robust"            # another tier, or "workspace" (the task's starter files)
    remove = ["lb/monitor.py"]  # optional: base files this tier does without

Then the tier's files are the base's (itself possibly an overlay), minus ``remove``, with
the folder's own files laid over them (``solution.toml`` is not one of them). The result
is built once per content in a private cache directory (``0700``, under the temporary
directory, never visible to sandboxes, which see only ``/usr`` and ``/etc``) and rebuilt
when any layer changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .._errors import ConfigError

__all__ = [
    "SOLUTION_TOML",
    "WORKSPACE_BASE",
    "materialize_overlay",
    "materialize_solution",
    "solution_problems",
]

SOLUTION_TOML = "solution.toml"
WORKSPACE_BASE = "workspace"
STALE_S = 24 * 3600.0  # an older build of a tier is removed once it is a day old


@dataclass(frozen=True)
class _Layer:
    path: Path
    remove: tuple[str, ...] = ()


def _read(folder: Path, problems: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """(base, remove) of ``folder/solution.toml``, or None if it has none or it is bad."""
    f = folder / SOLUTION_TOML
    if not f.is_file():
        return None
    label = f"solutions/{folder.name}/{SOLUTION_TOML}"
    try:
        raw = tomllib.loads(f.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        problems.append(f"{label}: not valid TOML ({e})")
        return None
    for k in sorted(set(raw) - {"base", "remove"}):
        problems.append(f"{label}: unknown key {k!r} (known: base, remove)")
    base = raw.get("base")
    if not isinstance(base, str) or not base:
        problems.append(
            f'{label}: base must name another tier or "{WORKSPACE_BASE}", e.g. base = "robust"'
        )
        return None
    remove = raw.get("remove", [])
    if not isinstance(remove, list) or not all(isinstance(r, str) for r in remove):
        problems.append(f'{label}: remove must be a list of paths, e.g. remove = ["app/x.py"]')
        return None
    for r in remove:
        p = PurePosixPath(r)
        if not r or p.is_absolute() or ".." in p.parts:
            problems.append(f"{label}: remove: {r!r} must be a relative path inside the base")
            return None
    return base, tuple(remove)


def _chain(task_dir: Path, tier: str, problems: list[str]) -> list[_Layer] | None:
    """The layers of ``tier``, the bottom one first, or None (with the problems) if its
    bases are missing, bad or circular."""
    sols = task_dir / "solutions"
    layers: list[_Layer] = []
    seen: list[str] = []
    name = tier
    while True:
        folder = sols / name
        if not folder.is_dir():
            problems.append(
                f"solutions/{seen[-1]}/{SOLUTION_TOML}: base {name!r} is neither a tier "
                f'in solutions/ nor "{WORKSPACE_BASE}"'
            )
            return None
        seen.append(name)
        found = _read(folder, problems)
        if found is None:
            if (folder / SOLUTION_TOML).is_file():
                return None  # a bad solution.toml: its problem is recorded
            layers.append(_Layer(folder))
            break
        base, remove = found
        layers.append(_Layer(folder, remove))
        if base == WORKSPACE_BASE:
            layers.append(_Layer(task_dir / "workspace"))
            break
        if base in seen:
            problems.append(
                f"solutions/{tier}/: its bases go round in a circle: {' -> '.join([*seen, base])}"
            )
            return None
        name = base
    layers.reverse()
    return layers


def solution_problems(task_dir: Path) -> list[str]:
    """What is wrong with the ``solution.toml`` files of a task folder (empty: nothing)."""
    sols = task_dir / "solutions"
    problems: list[str] = []
    if not sols.is_dir():
        return problems
    for folder in sorted(sols.iterdir()):
        if folder.is_dir() and (folder / SOLUTION_TOML).is_file():
            _chain(task_dir, folder.name, problems)
    return list(dict.fromkeys(problems))


def _files(root: Path) -> list[Path]:
    out = [p for p in root.rglob("*") if p.is_file() or p.is_symlink()]
    return sorted(p for p in out if p.relative_to(root).as_posix() != SOLUTION_TOML)


def _digest(layers: list[_Layer]) -> str:
    h = hashlib.sha256()
    for layer in layers:
        h.update(b"\0layer\0" + "\0".join(layer.remove).encode())
        for p in _files(layer.path):
            rel = p.relative_to(layer.path).as_posix()
            if p.is_symlink():
                h.update(f"\0L{rel}\0{os.readlink(p)}".encode())
            else:
                h.update(f"\0F{rel}\0{p.stat().st_mode & 0o777:o}\0".encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:20]


def _build(layers: list[_Layer], dest: Path) -> None:
    dest.mkdir(parents=True)
    for layer in layers:
        for r in layer.remove:
            victim = dest / r
            if victim.is_dir() and not victim.is_symlink():
                shutil.rmtree(victim)
            elif victim.exists() or victim.is_symlink():
                victim.unlink()
            else:
                raise ConfigError(
                    f"solutions/{layer.path.name}/{SOLUTION_TOML}: remove names {r!r}, "
                    "which its base does not have"
                )
        for p in _files(layer.path):
            target = dest / p.relative_to(layer.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            shutil.copy2(p, target, follow_symlinks=False)


def cache_root() -> Path:
    root = Path(tempfile.gettempdir()) / f"infragym-solutions-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    if root.is_symlink() or root.stat().st_uid != os.getuid():
        raise ConfigError(f"{root} is not this user's own directory: remove it")
    os.chmod(root, 0o700)
    return root


def materialize_solution(task_dir: Path, tier: str, task_name: str) -> Path:
    """The folder holding ``tier``'s files: ``solutions/<tier>/`` itself for a whole
    workspace, else its overlay built (once per content) in the private cache."""
    folder = task_dir / "solutions" / tier
    if not (folder / SOLUTION_TOML).is_file():
        return folder
    problems: list[str] = []
    layers = _chain(task_dir, tier, problems)
    if layers is None:
        raise ConfigError(f"task {task_name}: " + "; ".join(problems))
    return _cached(layers, task_name, tier)


def materialize_overlay(base: Path, top: Path, task_name: str, label: str) -> Path:
    """``top``'s files laid over ``base``'s, built once per content in the private cache
    (a live task's ``inherit/`` over another task's reference: ``inherit_base``)."""
    return _cached([_Layer(base), _Layer(top)], task_name, label)


def _cached(layers: list[_Layer], task_name: str, tier: str) -> Path:
    parent = cache_root() / task_name
    parent.mkdir(exist_ok=True)
    dest = parent / f"{tier}-{_digest(layers)}"
    if dest.is_dir():
        return dest
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent)) / "tree"
    try:
        _build(layers, tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():  # not another process that built the same one first
                raise
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    now = time.time()
    for old in parent.glob(f"{tier}-*"):
        built = re.fullmatch(r"[0-9a-f]{20}", old.name[len(tier) + 1 :])  # not robust-shell-*
        if built and old != dest and now - old.stat().st_mtime > STALE_S:
            shutil.rmtree(old, ignore_errors=True)
    return dest
