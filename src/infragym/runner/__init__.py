"""Running many episodes: concurrency on one machine or on remote servers, results and
their summary."""

from ._hf import export_hf_dataset, hf_features
from ._rollout import SERVE_SESSIONS, EpisodeOutcome, Summary, rollout_many, run_config
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
    "RUN_STORE_FILE",
    "SERVE_SESSIONS",
    "STATUSES",
    "TRAJECTORIES_FILE",
    "TRAJECTORY_SCHEMA_VERSION",
    "EpisodeOutcome",
    "EpisodeRecord",
    "RunStore",
    "Summary",
    "Trajectory",
    "build_trajectory",
    "export_hf_dataset",
    "export_openai_jsonl",
    "hf_features",
    "read_run",
    "read_trajectories",
    "rollout_many",
    "run_config",
]
