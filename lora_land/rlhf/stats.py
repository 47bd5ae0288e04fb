"""Uncertainty for the loop's figures: bootstrap 95% intervals for a mean and a paired difference.

Percentile bootstrap through `scipy.stats.bootstrap` (seeded, so a figure is reproducible);
a sample whose values are all equal has a zero-width interval. Plain numbers in, plain
numbers out; this module knows nothing about models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

N_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float  # 95% bootstrap interval
    high: float
    n: int

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def _bootstrap(statistic, data: tuple[np.ndarray, ...], paired: bool, seed: int) -> tuple:
    from scipy.stats import bootstrap

    result = bootstrap(
        data,
        statistic,
        paired=paired,
        n_resamples=N_RESAMPLES,
        confidence_level=0.95,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_interval(values: Sequence[float], seed: int = 0) -> Interval:
    """The mean of `values` with its 95% bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to summarise")
    mean = float(x.mean())
    if x.size == 1 or np.ptp(x) == 0:
        return Interval(mean, mean, mean, int(x.size))
    low, high = _bootstrap(lambda a, axis: a.mean(axis=axis), (x,), False, seed)
    return Interval(mean, low, high, int(x.size))


def paired_difference(after: Sequence[float], before: Sequence[float], seed: int = 0) -> Interval:
    """Mean of `after - before` over the same rows, with a paired 95% bootstrap interval."""
    a, b = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in size: {a.size} vs {b.size}")
    return mean_interval(a - b, seed)
