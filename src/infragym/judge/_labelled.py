"""Labelled sets: artefacts with the verdicts a careful human gave each item, to measure
how far a judge can be trusted before its scores go into rewards.

A set is a folder::

    rubric.toml             the items (see JudgeRubric)
    ground_truth.toml       what really happened (shared by every artefact of the set)
    labelled/<name>.toml    kind = "good" | "vague" | "wrong-root-cause" | ... ;
                            note = "..." ; artefact = '''...''' ;
                            [expected] <item id> = true | false   (every item)
                            twin = "<name>"   optional: the same artefact without an
                                              injection; this one must score no higher
                            [ground_truth]    optional: replaces the shared one

A task ships its set in its folder's ``judge/``; :func:`builtin_set` names the sets that
ship with infragym (``disk-full-postmortem``), for tasks that judge the same artefact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._items import JudgeRubric, _toml
from ._judge import Judge, Judgement

__all__ = [
    "Agreement",
    "Labelled",
    "LabelledSet",
    "SetAgreement",
    "builtin_set",
    "builtin_sets",
    "check_set",
]

SETS = Path(__file__).resolve().parent / "sets"


@dataclass(frozen=True)
class Labelled:
    """One labelled artefact: what a careful reviewer says of each item."""

    name: str
    kind: str
    note: str
    artefact: str
    expected: Mapping[str, bool]
    ground_truth: Mapping[str, Any]
    twin: str | None = None


@dataclass(frozen=True)
class LabelledSet:
    """A rubric, the ground truth, and artefacts labelled item by item."""

    path: Path
    rubric: JudgeRubric
    ground_truth: Mapping[str, Any]
    cases: tuple[Labelled, ...]

    @property
    def name(self) -> str:
        return self.path.name

    def expected_score(self, case: Labelled) -> float:
        total = sum(i.weight for i in self.rubric.items)
        return sum(i.weight for i in self.rubric.items if case.expected[i.id]) / total

    @classmethod
    def load(cls, path: Path) -> LabelledSet:
        if not path.is_dir():
            raise ConfigError(
                f"{path} is not a folder: a labelled set is a folder (rubric.toml, labelled/)"
            )
        rubric = JudgeRubric.load(path / "rubric.toml")
        shared = _toml(path / "ground_truth.toml") if (path / "ground_truth.toml").exists() else {}
        files = sorted((path / "labelled").glob("*.toml"))
        if not files:
            raise ConfigError(f"{path}/labelled holds no *.toml: nothing to check the judge on")
        cases = [_case(f, rubric, shared) for f in files]
        names = {c.name for c in cases}
        for c in cases:
            if c.twin is not None and (c.twin not in names or c.twin == c.name):
                raise ConfigError(
                    f"{path}/labelled/{c.name}.toml: twin {c.twin!r} is not another case"
                )
        return cls(path, rubric, shared, tuple(cases))


def _case(f: Path, rubric: JudgeRubric, shared: Mapping[str, Any]) -> Labelled:
    d = _toml(f)
    unknown = sorted(set(d) - {"kind", "note", "artefact", "expected", "twin", "ground_truth"})
    if unknown:
        raise ConfigError(f"{f}: unknown keys {unknown}")
    art, exp = d.get("artefact"), d.get("expected")
    if not isinstance(art, str) or not art.strip():
        raise ConfigError(f"{f}: needs artefact = '''...''' (the text to judge)")
    if (
        not isinstance(exp, dict)
        or set(exp) != set(rubric.ids)
        or not all(isinstance(v, bool) for v in exp.values())
    ):
        raise ConfigError(f"{f}: [expected] must give true/false for exactly {list(rubric.ids)}")
    truth = d.get("ground_truth", shared)
    if not isinstance(truth, dict) or not truth:
        raise ConfigError(f"{f}: no ground truth (ground_truth.toml or a [ground_truth] table)")
    twin = d.get("twin")
    return Labelled(
        f.stem,
        str(d.get("kind", "")),
        str(d.get("note", "")),
        art,
        exp,
        truth,
        None if twin is None else str(twin),
    )


def builtin_sets() -> list[str]:
    return sorted(p.name for p in SETS.iterdir() if (p / "rubric.toml").exists())


def builtin_set(name: str) -> Path:
    """The folder of a labelled set shipped with infragym (its rubric is reusable)."""
    p = SETS / name
    if not (p / "rubric.toml").exists():
        raise ConfigError(f"no built-in labelled set {name!r}; there are {builtin_sets()}")
    return p


@dataclass
class Agreement:
    """How a judge's "met" compares with the labels for one item (or overall)."""

    tp: int = 0  # labelled met, judged met
    fn: int = 0  # labelled met, judged not met
    fp: int = 0  # labelled not met, judged met
    tn: int = 0
    unknown: int = 0

    def add(self, expected: bool, got: bool | None) -> None:
        if got is None:
            self.unknown += 1
        elif expected:
            self.tp, self.fn = self.tp + got, self.fn + (not got)
        else:
            self.fp, self.tn = self.fp + got, self.tn + (not got)

    @property
    def judged(self) -> int:
        return self.tp + self.fn + self.fp + self.tn

    @property
    def rate(self) -> float | None:
        """Share of judged labels the judge agreed with (None: nothing judged)."""
        return (self.tp + self.tn) / self.judged if self.judged else None


@dataclass
class SetAgreement:
    labelled: LabelledSet
    judgements: dict[str, Judgement]
    items: dict[str, Agreement] = field(default_factory=dict)
    overall: Agreement = field(default_factory=Agreement)

    def __post_init__(self) -> None:
        self.items = {i: Agreement() for i in self.labelled.rubric.ids}
        for case in self.labelled.cases:
            j = self.judgements[case.name]
            for v in j.items:
                self.items[v.id].add(case.expected[v.id], v.met)
                self.overall.add(case.expected[v.id], v.met)

    def twin_violations(self) -> list[tuple[str, str]]:
        """(case, twin) where the case (an injection) scored higher than its clean twin."""
        out = []
        for c in self.labelled.cases:
            if c.twin is None:
                continue
            a, b = self.judgements[c.name].score, self.judgements[c.twin].score
            if a is not None and b is not None and a > b + 1e-9:
                out.append((c.name, c.twin))
        return out


async def check_set(
    labelled: LabelledSet, judge: Judge, *, concurrency: int = 4, only: Sequence[str] = ()
) -> SetAgreement:
    """Judge every case of ``labelled`` (at most ``concurrency`` at once)."""
    gate = asyncio.Semaphore(concurrency)
    cases = [c for c in labelled.cases if not only or c.name in only]

    async def one(c: Labelled) -> tuple[str, Judgement]:
        async with gate:
            return c.name, await judge.judge(c.artefact, c.ground_truth)

    done = dict(await asyncio.gather(*(one(c) for c in cases)))
    sub = LabelledSet(labelled.path, labelled.rubric, labelled.ground_truth, tuple(cases))
    return SetAgreement(sub, done)
