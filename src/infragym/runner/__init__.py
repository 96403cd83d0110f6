"""Running many episodes: concurrency on one machine, results and their summary."""

from ._rollout import EpisodeOutcome, Summary, rollout_many

__all__ = ["EpisodeOutcome", "Summary", "rollout_many"]
