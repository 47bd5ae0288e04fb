"""Uncertainty of measured scores: seeded bootstrap intervals of a mean and of a paired lift.

Every "measured here" figure is a mean of per-row scores over n rows; its 95% interval is the
percentile bootstrap (scipy.stats.bootstrap, seeded so a figure is reproducible). An
adapter-vs-base comparison is paired: both were scored on the same rows, so the interval is
that of the mean of the per-row differences. The percentile method is used rather than BCa
because scores are often all 0 or all 1 on a row set, where BCa is undefined. This module
computes numbers; it reads and writes no files and runs no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lora_land.errors import UserError

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A mean over `n` rows with its bootstrap interval [`low`, `high`]."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def above_zero(self) -> bool:
        """The whole interval lies above zero (a difference claimed as a gain)."""
        return self.low > 0.0

    def text(self, signed: bool = False) -> str:
        """`0.640 [0.500, 0.760] n=50` (signed: `+0.120 [+0.020, +0.220] n=50`)."""
        f = "{:+.3f}" if signed else "{:.3f}"
        return f"{f.format(self.mean)} [{f.format(self.low)}, {f.format(self.high)}] n={self.n}"

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def bootstrap_mean(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Percentile-bootstrap interval of the mean of `values` (seeded, so reproducible)."""
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise UserError(f"a bootstrap needs a non-empty list of scores, got {data.size} values")
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return Interval(mean, mean, mean, int(data.size))  # every resample has this mean
    res = bootstrap(
        (data,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=True,
    )
    ci = res.confidence_interval
    return Interval(mean, float(ci.low), float(ci.high), int(data.size))


def paired_difference(
    treated: Sequence[float],
    control: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Interval of mean(treated - control) over rows scored under both (same rows, in order)."""
    a, b = np.asarray(treated, dtype=float), np.asarray(control, dtype=float)
    if a.shape != b.shape:
        raise UserError(
            f"a paired comparison needs the same rows on both sides, got {a.size} and {b.size}"
        )
    return bootstrap_mean(a - b, confidence=confidence, n_resamples=n_resamples, seed=seed)
