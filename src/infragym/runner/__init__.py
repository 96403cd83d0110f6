"""Running many episodes: concurrency on one machine, across a Ray cluster or on remote
``infragym serve`` servers (one per Ray node: :func:`serve_on_ray`); results and their
summary."""

from ._episode import SERVE_SESSIONS, EpisodeOutcome
from ._hf import export_hf_dataset, hf_features
from ._ray import EPISODE_RESOURCE, episode_slots
from ._rollout import Summary, rollout_many, run_config
from ._serve_ray import RayServers, serve_on_ray
from ._store import RUN_STORE_FILE, STATUSES, EpisodeRecord, RunStore, read_run
from ._trajectory import (
    TRAJECTORIES_FILE,
    TRAJECTORY_SCHEMA_VERSION,
    Trajectory,
    build_trajectory,
    export_openai_jsonl,
    read_trajectories,
)

__all__ = [
    "EPISODE_RESOURCE",
    "RUN_STORE_FILE",
    "SERVE_SESSIONS",
    "STATUSES",
    "TRAJECTORIES_FILE",
    "TRAJECTORY_SCHEMA_VERSION",
    "EpisodeOutcome",
    "EpisodeRecord",
    "RayServers",
    "RunStore",
    "Summary",
    "Trajectory",
    "build_trajectory",
    "episode_slots",
    "export_hf_dataset",
    "export_openai_jsonl",
    "hf_features",
    "read_run",
    "read_trajectories",
    "rollout_many",
    "run_config",
    "serve_on_ray",
]
