"""One episode, start to end, and what it gives back: the unit both backends run.

The local backend runs :func:`play_episode` in its own event loop; the Ray backend runs it
in a worker on a node of the cluster and sends the :class:`EpisodeOutcome` (grade and
trajectory included) back in the task's return value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigError, InfraGymError
from ..agent import Agent
from ..env import Env, EpisodeError, ResetObservation, StepResult, make
from ..grading import GradeResult
from ..remote import REMOTE_OPTIONS, RemoteEnv
from ._store import EpisodeRecord
from ._trajectory import Trajectory, build_trajectory


@dataclass
class EpisodeOutcome:
    """One episode's result: ``reward`` is None exactly when ``error`` is set."""

    seed: int
    reward: float | None
    grade: GradeResult | None
    end_reason: str | None
    wall_s: float
    agent: str
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    trajectory: Trajectory | None = None
    kept: bool = False  # finished by an earlier process of this run, not rerun

    @classmethod
    def from_record(cls, r: EpisodeRecord) -> EpisodeOutcome:
        """A finished episode of the store, as the run that finished it returned it."""
        return cls(
            r.seed,
            r.reward,
            GradeResult.model_validate_json(r.grade) if r.grade else None,
            r.end_reason,
            r.wall_s or 0.0,
            r.agent,
            error=r.error,
            info=r.info,
            trajectory=Trajectory.model_validate_json(r.trajectory) if r.trajectory else None,
            kept=True,
        )


SERVE_SESSIONS = 4  # `infragym serve --max-sessions`'s default


def remote_options(env_options: dict[str, Any]) -> dict[str, Any]:
    """The Env options a remote episode sends its server: those a client may set (the
    server keeps its own artifacts, sandbox limits and progress)."""
    local = {"artifacts_dir", "progress"}
    refused = sorted(set(env_options) - set(REMOTE_OPTIONS) - local)
    if refused:
        raise ConfigError(
            f"option(s) {', '.join(refused)} cannot be set on a remote server; "
            f"a client may set: {', '.join(REMOTE_OPTIONS)}"
        )
    return {k: v for k, v in env_options.items() if k in REMOTE_OPTIONS}


async def play_episode(
    task: str, agent: Agent, seed: int, env_options: dict[str, Any], server: str | None = None
) -> EpisodeOutcome:
    """Reset an Env of ``task`` with ``seed``, let ``agent`` play, grade, close; a platform
    failure (an :class:`InfraGymError`) is the outcome's ``error``, with no reward. With
    ``server``, the episode runs on that ``infragym serve`` (:class:`RemoteEnv`)."""
    t0 = time.monotonic()
    obs: ResetObservation | None = None
    final: StepResult | None = None
    env: Env | RemoteEnv = (
        make(task, **env_options)
        if server is None
        else RemoteEnv(server, task, options=remote_options(env_options))
    )
    try:
        try:
            obs = await env.reset(seed=seed)
            final = await agent.play(env)  # type: ignore[arg-type]
            if not isinstance(final.info.get("grade"), GradeResult):
                raise EpisodeError(
                    f"the agent {agent.name} stopped before the episode ended (its last step "
                    "was not graded): an agent plays until a step is terminated or truncated"
                )
        finally:
            await env.close()
    except InfraGymError as exc:
        out = EpisodeOutcome(
            seed, None, None, None, time.monotonic() - t0, agent.name, error=str(exc)
        )
    else:
        grade: GradeResult = final.info["grade"]
        out = EpisodeOutcome(
            seed,
            grade.reward,
            grade,
            final.info.get("end_reason"),
            time.monotonic() - t0,
            agent.name,
            error=grade.error,
            info={"steps": final.info.get("step"), "variant": grade.variant}
            | ({"server": server} if server else {}),
        )
    out.trajectory = build_trajectory(
        task,
        seed,
        agent,
        obs,
        final,
        out.grade,
        out.wall_s,
        out.error if out.grade is None else None,
    )
    return out
