"""A judge's rubric: concrete items with weights, loaded from ``rubric.toml``.

::

    artefact = "postmortem"
    description = "The postmortem of the disk incident of this episode."

    [[item]]
    id = "root-cause"
    weight = 3
    text = "States the root cause as recorded: ..."
    scripted = { all = ["\\blog"], none = ["memory leak"] }   # the scripted judge only

``text`` is what the model reads; ``scripted`` holds the deterministic rules of the
scripted judge tests use (:mod:`infragym.testing.scripted_judge`) and is never sent.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError

__all__ = ["JudgeItem", "JudgeRubric"]

ITEM_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class JudgeItem:
    """One thing the artefact must get right; ``weight`` > 0."""

    id: str
    text: str
    weight: float = 1.0
    scripted: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not ITEM_ID.fullmatch(self.id):
            raise ConfigError(
                f"judge item id {self.id!r} must be 1-64 lower-case letters, digits, - or _"
            )
        if not self.text.strip():
            raise ConfigError(f"judge item {self.id!r} needs a text saying what is met")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ConfigError(f"judge item {self.id!r} has weight {self.weight}; it must be > 0")


@dataclass(frozen=True, init=False)
class JudgeRubric:
    """What a judge scores an artefact on; the score is the weighted share of items met."""

    artefact: str
    description: str
    items: tuple[JudgeItem, ...]

    def __init__(
        self, items: Iterable[JudgeItem], artefact: str = "artefact", description: str = ""
    ) -> None:
        its = tuple(items)
        if not its:
            raise ConfigError("a judge rubric needs at least one item")
        ids = [i.id for i in its]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ConfigError(f"judge rubric items must have distinct ids; repeated: {dup}")
        object.__setattr__(self, "items", its)
        object.__setattr__(self, "artefact", artefact)
        object.__setattr__(self, "description", description)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)

    def item(self, item_id: str) -> JudgeItem:
        for i in self.items:
            if i.id == item_id:
                return i
        raise KeyError(item_id)

    @classmethod
    def load(cls, path: Path) -> JudgeRubric:
        """Read ``rubric.toml`` (format in the module docstring)."""
        data = _toml(path)
        raw = data.get("item")
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{path}: a judge rubric needs [[item]] tables (id, text, weight)")
        items = []
        for n, it in enumerate(raw, 1):
            if not isinstance(it, dict):
                raise ConfigError(f"{path}: item {n} is not a table")
            unknown = sorted(set(it) - {"id", "text", "weight", "scripted"})
            if unknown:
                raise ConfigError(f"{path}: item {n} has unknown keys {unknown}")
            weight = it.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ConfigError(f"{path}: item {n} weight must be a number, not {weight!r}")
            scripted = it.get("scripted", {})
            if not isinstance(scripted, dict):
                raise ConfigError(f"{path}: item {n} scripted must be a table")
            items.append(
                JudgeItem(str(it.get("id", "")), str(it.get("text", "")), float(weight), scripted)
            )
        return cls(
            items,
            artefact=str(data.get("artefact", "artefact")),
            description=str(data.get("description", "")),
        )


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
