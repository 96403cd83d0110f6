"""The layering of the design, enforced: lower layers never import higher ones, no package
reaches into another's private modules, and no test module imports another.

The layers, lowest first (a package may import its own layer's neighbours only where
the map below says so, and any lower layer):
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "infragym"

LAYERS: dict[str, int] = {
    "_errors": 0,
    "probes": 0,
    "sandbox": 1,
    "history": 1,
    "tasks": 1,
    "nemesis": 2,
    "workload": 2,
    "checkers": 2,
    "rubric": 3,
    "judge": 4,
    "attack": 3,
    "grading": 4,
    "report": 8,
    "env": 5,
    "agent": 6,
    "gym": 6,
    "runner": 7,
    "testing": 7,
    "serve": 7,
    "remote": 6,
    "integrations": 7,
    "demo": 8,
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
}


def _package(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[list[str], int]]:
    """Every import of an infragym module in ``path``: its parts below ``infragym``."""
    rel = path.relative_to(SRC)
    found: list[tuple[list[str], int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel.parts[:-1])
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                parts = base + [p for p in (node.module or "").split(".") if p]
                if not node.module:  # from . import x: each name may be a module
                    for alias in node.names:
                        found.append(([*parts, alias.name], node.lineno))
                    continue
            elif node.module and node.module.split(".")[0] == "infragym":
                parts = node.module.split(".")[1:]
            else:
                continue
            found.append((parts, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "infragym":
                    found.append((alias.name.split(".")[1:], node.lineno))
    return found


def _sources() -> list[Path]:
    return [
        p
        for p in sorted(SRC.rglob("*.py"))
        # built-in tasks' graders and solutions sit above the platform: they may use
        # any public part of it (tested by the second test, not the first)
        if "builtin" not in p.relative_to(SRC).parts
    ]


def test_every_package_has_a_layer() -> None:
    packages = {_package(p.relative_to(SRC)) for p in _sources()}
    assert packages <= set(LAYERS), f"add these packages to LAYERS: {packages - set(LAYERS)}"


def test_no_lower_layer_imports_a_higher_one() -> None:
    bad: list[str] = []
    for path in _sources():
        rel = path.relative_to(SRC)
        mine = _package(rel)
        for parts, line in _imports(path):
            if not parts or parts[0] == mine or parts[0] not in LAYERS:
                continue
            if LAYERS[parts[0]] > LAYERS[mine]:
                bad.append(f"{rel}:{line} ({mine}, layer {LAYERS[mine]}) imports {'.'.join(parts)}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_no_package_imports_another_packages_private_modules() -> None:
    bad: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        mine = _package(rel)
        for parts, line in _imports(path):
            if len(parts) < 2 or parts[0] == mine:
                continue
            if any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
                bad.append(f"{rel}:{line} imports {'.'.join(parts)}")
    assert not bad, "private cross-package imports (export the name instead):\n" + "\n".join(bad)


def test_no_test_module_imports_another() -> None:
    tests = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    bad: list[str] = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            bad += [f"{path.name}:{node.lineno} imports {n}" for n in names if n in tests]
    assert not bad, "move shared helpers to tests/conftest.py or a helper module:\n" + "\n".join(
        bad
    )
