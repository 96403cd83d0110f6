"""``[validation]`` of ``task.toml``: the band each reference and probe must score in.

::

    [validation]
    seeds = [1, 2, 3, 4, 5]     # what `infragym validate --tiers` grades by default
    max_spread = 0.05           # max - min reward of one tier across seeds
    probes = ["always-200"]     # hack probes of the catalogue (infragym.probes) that apply
    probe_base = "robust"       # the reference solution wrapping probes are built on

    [validation.bands]          # a solution folder's name (or "starter") -> its band
    broken = { max = 0.05 }
    naive = { max = 0.40 }
    robust = { min = 0.85 }
    starter = { max = 0.0 }     # the starter workspace: what an agent that does nothing gets

A task states what its graded references prove: robust high, naive low, broken and the
no-op near zero, every cheat under its ceiling. ``infragym validate --tiers`` and
``infragym.testing.check_task`` grade them and compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..probes import PROBES

if TYPE_CHECKING:
    from ._spec import TaskSpec

STARTER = "starter"
"""The band name of the starter workspace, i.e. what a no-op agent submits."""


@dataclass(frozen=True)
class Band:
    """Rewards in ``[min, max]`` are in the band."""

    min: float = 0.0
    max: float = 1.0

    def __contains__(self, reward: object) -> bool:
        return isinstance(reward, int | float) and self.min - 1e-9 <= reward <= self.max + 1e-9

    def __str__(self) -> str:
        if self.min <= 0.0 and self.max >= 1.0:
            return "any"
        if self.min <= 0.0:
            return f"<= {self.max:g}"
        if self.max >= 1.0:
            return f">= {self.min:g}"
        return f"{self.min:g}-{self.max:g}"


@dataclass(frozen=True)
class Validation:
    bands: dict[str, Band] = field(default_factory=dict)
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    max_spread: float = 0.05
    probes: tuple[str, ...] = ()
    """Hack probes of the catalogue (:mod:`infragym.probes`) that apply to the task."""
    probe_base: str = "robust"
    """The reference solution (a ``solutions/`` folder) that probes built on one wrap."""
    scripted_judge: str | None = None
    """A live task's judged phases are judged in validation by the scripted judge of this
    labelled set of :mod:`infragym.judge` (its rubric's scripted rules): deterministic
    bands, no model needed."""


def probe_problems(spec: TaskSpec, solutions: set[str]) -> list[str]:
    """What stops the listed probes from being built for a task (``solutions``: its
    solution folders): a probe built on a reference needs
    ``solutions/<probe_base>/``, and one wrapping it needs ``PORT`` in the contract."""
    v = spec.validation
    out = []
    for name in v.probes:
        p = PROBES[name]
        if p.needs_base and v.probe_base not in solutions:
            out.append(
                f"task.toml: [validation] probe {name!r} is built on the reference "
                f"solutions/{v.probe_base}/ (probe_base), which the task does not have: "
                "add it, set probe_base to another solution, or drop the probe"
            )
        if p.kind == "wrapping" and "PORT" not in spec.contract_env:
            out.append(
                f"task.toml: [validation] probe {name!r} moves the reference to another port "
                "by its PORT variable, which [contract.env] does not set: drop the probe"
            )
    return out


def _unit(v: Any) -> bool:
    return (
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
    )


def parse_validation(raw: Any, problems: list[str]) -> Validation:
    """Parse the ``[validation]`` table; append every problem found to ``problems``."""
    if raw is None:
        return Validation()
    if not isinstance(raw, dict):
        problems.append("task.toml: [validation] must be a table")
        return Validation()
    where = "task.toml: [validation]"
    known = ("bands", "max_spread", "probe_base", "probes", "scripted_judge", "seeds")
    for k in sorted(set(raw) - set(known)):
        problems.append(f"{where}: unknown key {k!r} (known: {', '.join(known)})")
    probes = raw.get("probes", [])
    if not isinstance(probes, list) or not all(isinstance(p, str) for p in probes):
        problems.append(f"{where}: probes must be a list of probe names")
        probes = []
    for p in probes:
        if p not in PROBES:
            problems.append(
                f"{where}: no hack probe {p!r} in the catalogue (known: {', '.join(PROBES)})"
            )
    probes = [p for p in dict.fromkeys(probes) if p in PROBES]
    base = raw.get("probe_base", "robust")
    if not isinstance(base, str) or not base or "/" in base or base.startswith("."):
        problems.append(f"{where}: probe_base must name a solutions/ folder, not {base!r}")
        base = "robust"
    seeds = raw.get("seeds", [1, 2, 3, 4, 5])
    if not (
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        and len(set(seeds)) == len(seeds)
    ):
        problems.append(f"{where}: seeds must be a non-empty list of distinct integers >= 0")
        seeds = [1, 2, 3, 4, 5]
    spread = raw.get("max_spread", 0.05)
    if not _unit(spread):
        problems.append(f"{where}: max_spread must be a number in [0, 1], not {spread!r}")
        spread = 0.05
    bands: dict[str, Band] = {}
    table = raw.get("bands", {})
    if not isinstance(table, dict):
        problems.append(f"{where}: bands must be a table of name = {{ min = .., max = .. }}")
        table = {}
    for name, spec in table.items():
        if not isinstance(spec, dict) or not spec or set(spec) - {"min", "max"}:
            problems.append(
                f"{where}.bands.{name}: write {{ min = X }}, {{ max = Y }} or both, "
                f"with X and Y in [0, 1]; got {spec!r}"
            )
            continue
        lo, hi = spec.get("min", 0.0), spec.get("max", 1.0)
        if not (_unit(lo) and _unit(hi) and lo <= hi):
            problems.append(f"{where}.bands.{name}: need 0 <= min <= max <= 1, got {spec!r}")
            continue
        bands[name] = Band(float(lo), float(hi))
    judge = raw.get("scripted_judge")
    if judge is not None and (not isinstance(judge, str) or not judge):
        problems.append(f"{where}: scripted_judge must name a labelled set, not {judge!r}")
        judge = None
    return Validation(bands, tuple(seeds), float(spread), tuple(probes), base, judge)
