"""What a report reads: run directories through their stores, each episode's grade,
trajectory and history, and what "pass" means for each task."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, InfraGymError
from ..grading import GradeResult
from ..history import History
from ..tasks import find_task, load_task

if TYPE_CHECKING:  # the runner (and the agents under it) is imported when a report is made
    from ..runner import EpisodeRecord, Trajectory

HISTORY_FILE = "history.jsonl"
ROBUST = "robust"


@dataclass(frozen=True)
class Episode:
    """One episode of a run: its store row, and its grade and trajectory parsed."""

    record: EpisodeRecord
    grade: GradeResult | None
    trajectory: Trajectory | None
    run_dir: Path

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def reward(self) -> float | None:
        """The reward of a graded (``done``) episode; None for every other status."""
        return self.record.reward if self.record.status == "done" else None

    def history_file(self) -> Path | None:
        """The grading's history: where the grade says, or (the run directory moved) the
        one under this seed's artefacts directory."""
        if self.grade is not None and self.grade.history_path:
            p = Path(self.grade.history_path)
            if p.is_file():
                return p
        found = sorted((self.run_dir / f"seed{self.seed}").glob(f"*/grading/{HISTORY_FILE}"))
        return found[-1] if found else None

    def history(self) -> History | None:
        p = self.history_file()
        return History.read_jsonl(p) if p is not None else None


@dataclass(frozen=True)
class Run:
    """A run directory as the report shows it; ``label`` names it among the others."""

    label: str
    path: Path
    config: dict[str, Any]
    episodes: tuple[Episode, ...]

    @property
    def task(self) -> str:
        return str(self.config.get("task"))

    def rewards(self) -> dict[int, float]:
        """Seed to reward, for the graded episodes only."""
        return {e.seed: e.reward for e in self.episodes if e.reward is not None}

    def count(self, *statuses: str) -> int:
        return sum(e.status in statuses for e in self.episodes)


@dataclass(frozen=True)
class PassRule:
    """An episode passes when its reward is at least ``threshold``; ``why`` says where the
    threshold came from."""

    threshold: float
    why: str


def _episode(rec: EpisodeRecord, run_dir: Path) -> Episode:
    from ..runner import Trajectory

    grade = trajectory = None
    where = f"{run_dir} seed {rec.seed}"
    try:
        if rec.grade:
            grade = GradeResult.model_validate_json(rec.grade)
        if rec.trajectory:
            trajectory = Trajectory.model_validate_json(rec.trajectory)
    except ValueError as exc:
        raise ConfigError(f"{where}: the store's record does not parse ({exc})") from None
    return Episode(rec, grade, trajectory, run_dir)


def load_runs(run_dirs: Sequence[str | Path]) -> list[Run]:
    """The runs of ``run_dirs``, in the order given, each labelled by its agent (and model),
    with its directory's name added where two runs would share a label."""
    from ..runner import read_run

    if not run_dirs:
        raise ConfigError("a report needs at least one run directory")
    seen: set[Path] = set()
    loaded: list[tuple[Path, dict[str, Any], tuple[Episode, ...]]] = []
    for d in run_dirs:
        path = Path(d)
        if path.resolve() in seen:
            raise ConfigError(f"{path} is given twice: give each run directory once")
        seen.add(path.resolve())
        with read_run(path) as store:
            config, records = store.config(), store.episodes()
        loaded.append((path, config, tuple(_episode(r, path) for r in records)))
    base = [_agent_label(c) for _, c, _ in loaded]
    labels = [
        f"{b} ({p.resolve().name})" if base.count(b) > 1 else b
        for b, (p, _, _) in zip(base, loaded, strict=True)
    ]
    if len(set(labels)) != len(labels):  # same agent, same directory name elsewhere
        labels = [f"{lab} #{i}" for i, lab in enumerate(labels, 1)]
    return [Run(lab, p, c, eps) for lab, (p, c, eps) in zip(labels, loaded, strict=True)]


def _agent_label(config: dict[str, Any]) -> str:
    agent = str(config.get("agent") or "?")
    model = config.get("model")
    return f"{agent} ({model})" if model and str(model) not in agent else agent


def pass_rule(task: str, task_path: str | None, threshold: float | None) -> PassRule:
    """``threshold`` when given; else the lower bound of the task's ``robust`` band
    (``[validation.bands]`` of its ``task.toml``: what a production-grade solution scores);
    else 1.0."""
    if threshold is not None:
        if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise ConfigError(f"pass threshold {threshold} must be in [0, 1]")
        return PassRule(threshold, "the threshold given (--pass-threshold)")
    spec = None
    try:
        if task_path and Path(task_path, "task.toml").is_file():
            spec = load_task(Path(task_path)).spec
        else:
            spec = find_task(task).spec
    except InfraGymError:
        spec = None
    band = spec.validation.bands.get(ROBUST) if spec is not None else None
    if band is not None and band.min > 0.0:
        return PassRule(
            band.min, f"the lower bound of {task}'s robust band ([validation.bands] in task.toml)"
        )
    return PassRule(1.0, f"a full reward ({task} states no robust band; see --pass-threshold)")
