"""The report's statistics: bootstrap intervals of a mean, pass rates, paired differences.

A percentile bootstrap with a seeded generator: the same rewards give the same interval,
so a report written twice from the same runs is the same file. Platform failures never
enter these figures: they have no reward (the caller passes only graded episodes).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._errors import ConfigError

RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` values and its bootstrap interval (None below 2 values: one value
    says nothing about its spread)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    def __str__(self) -> str:
        if self.low is None or self.high is None:
            return f"{self.mean:.3f} (n={self.n}, no interval)"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_mean(
    values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Interval | None:
    """The mean of ``values`` with its percentile-bootstrap interval at ``level``: the mean
    of ``resamples`` samples drawn with replacement, from a generator seeded with ``seed``.
    None for no values."""
    if resamples < 100:
        raise ConfigError(f"resamples={resamples}: a bootstrap needs at least 100")
    if not 0.5 <= level < 1.0:
        raise ConfigError(f"level={level} must be in [0.5, 1), e.g. 0.95")
    vals = [float(v) for v in values]
    if not vals:
        return None
    if any(not math.isfinite(v) for v in vals):
        raise ConfigError("bootstrap_mean needs finite values")
    n = len(vals)
    mean = math.fsum(vals) / n
    if n < 2:
        return Interval(mean, None, None, n)
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(vals, k=n)) / n for _ in range(resamples))
    alpha = (1.0 - level) / 2
    low = means[math.floor(alpha * resamples)]
    high = means[math.ceil((1.0 - alpha) * resamples) - 1]
    return Interval(mean, low, high, n)


@dataclass(frozen=True)
class Paired:
    """``other - base`` on every seed both runs graded, in seed order."""

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    interval: Interval | None

    @property
    def wins(self) -> int:
        return sum(d > 1e-9 for d in self.differences)

    @property
    def losses(self) -> int:
        return sum(d < -1e-9 for d in self.differences)

    @property
    def ties(self) -> int:
        return len(self.differences) - self.wins - self.losses


def paired_differences(
    base: Mapping[int, float], other: Mapping[int, float], *, seed: int = 0
) -> Paired:
    """Per-seed differences ``other[s] - base[s]`` over the seeds both have, with the
    bootstrap interval of their mean (pairing by seed takes the seed's own difficulty out of
    the comparison)."""
    seeds = tuple(sorted(set(base) & set(other)))
    diffs = tuple(other[s] - base[s] for s in seeds)
    return Paired(seeds, diffs, bootstrap_mean(diffs, seed=seed))


def pass_count(rewards: Sequence[float], threshold: float) -> int:
    """How many rewards pass: ``reward >= threshold`` (with a 1e-9 tolerance, as bands)."""
    return sum(r >= threshold - 1e-9 for r in rewards)
