"""What a task's hidden grader gets to work with, and what it returns."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..history import Clock, History
from ..rubric import RewardResult
from ..sandbox import Cluster
from ..tasks import Variant


@dataclass
class GradeOutcome:
    """A grader's verdict: the rubric's reward, the functional-only score, notes."""

    reward: RewardResult
    functional: float
    notes: list[str] = field(default_factory=list)


@dataclass
class GradeContext:
    """Everything a grader needs; the pipeline owns and removes what it creates.

    ``workspace`` is a grader-owned copy of the agent's workspace (the agent can no longer
    change it). :meth:`cluster` builds a fresh production cluster with that copy deployed
    read-only at ``/srv/app`` on every host. ``history`` and ``clock`` are shared by the
    grader's workload and nemesis; the pipeline stores the history.

    ``variant`` is the task's variant of this seed (a read-only mapping of its
    ``[variants]`` keys, with ``host_names``): the one the agent's instructions and dev
    hosts were made with. The seed itself should only choose the fault schedule.
    """

    task: str
    seed: int
    workspace: Path
    artifacts_dir: Path
    budget_s: float
    clock: Clock = field(default_factory=Clock)
    history: History = field(default_factory=History)
    progress: Callable[[str], None] = lambda msg: None
    task_dirs: tuple[Path, ...] = ()  # the graded task's folder, hidden with all the others
    variant: Variant = field(default_factory=Variant.plain)
    _clusters: list[Cluster] = field(default_factory=list)
    _t0: float = field(default_factory=time.monotonic)

    def cluster(self, hosts: int | Sequence[str] | None = None, **kwargs: Any) -> Cluster:
        """A started production cluster with the workspace at ``/srv/app`` on each host:
        ``hosts`` hosts (a number or their names; default: the variant's hosts).

        A host of one of the task's roles gets that role's resources (CPU quota, memory,
        data disk) and capabilities (``net_admin``); ``limits``, ``host_limits``,
        ``data_sizes`` or ``net_admin`` given here replace what the roles say.

        The agent's system runs there: every task folder (graders, solutions) is hidden
        from it, even where a task is installed under ``/usr``.
        """
        from ..tasks import hidden_paths

        hidden = [*kwargs.pop("hidden", ()), *hidden_paths(*self.task_dirs)]
        names = self.variant.host_names if hosts is None else hosts
        if not isinstance(names, int):
            roles = self.variant.cluster_options(
                [n for n in names if isinstance(n, str)], kwargs.get("limits")
            )
            kwargs = {**roles, **kwargs}
        c = Cluster(
            names,
            app=self.workspace,
            artifacts_dir=self.artifacts_dir,
            hidden=hidden,
            **kwargs,
        )
        self._clusters.append(c)
        c.start()
        return c

    def cpu_usage_s(self) -> dict[str, float]:
        """CPU seconds used so far by each host of the clusters this grading made (the
        system under test), by ``run id/host``; removed hosts are left out."""
        usage: dict[str, float] = {}
        for c in list(self._clusters):
            for name, s in c.cpu_usage_s().items():
                usage[f"{c.run_id}/{name}"] = s
        return usage

    def cpu_stall_s(self) -> dict[str, float]:
        """Seconds in which some process of each cluster this grading made waited for a
        CPU so far, by run id (clusters without cgroup v2 left out)."""
        stalls = {c.run_id: c.cpu_stall_s() for c in list(self._clusters)}
        return {run: s for run, s in stalls.items() if s is not None}

    def remaining(self) -> float:
        """Seconds left of the grading budget."""
        return self.budget_s - (time.monotonic() - self._t0)

    def close(self) -> None:
        errors = []
        for c in reversed(self._clusters):
            try:
                c.close()
            except Exception as exc:
                errors.append(exc)
        self._clusters.clear()
        if errors:
            raise errors[0]

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
