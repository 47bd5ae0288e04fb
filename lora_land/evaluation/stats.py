"""Uncertainty of measured scores: seeded bootstrap intervals of a mean and of a paired lift.

Every "measured here" figure is a mean of per-row scores over n rows; its 95% interval is the
percentile bootstrap (scipy.stats.bootstrap, seeded so a figure is reproducible). An
adapter-vs-base comparison is paired: both were scored on the same rows, so the interval is
that of the mean of the per-row differences. The percentile method is used rather than BCa
because scores are often all 0 or all 1 on a row set, where BCa is undefined.

Rows are not always independent: e2e_nlg's and viggo's evaluation rows give one meaning
representation several reference texts (50 rows, 14 and 17 distinct inputs), and a greedy
model answers each input once, so rows sharing an input rise and fall together. Given each
row's input (`groups`), the bootstrap resamples inputs with all their rows (a cluster
bootstrap, which scipy does not offer): the interval then reflects 14 independent units, not
50. This module computes numbers; it reads and writes no files and runs no model.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from lora_land.errors import UserError

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A mean over `n` rows with its bootstrap interval [`low`, `high`]; `inputs` is the
    number of distinct inputs resampled when rows share inputs (None: every row its own)."""

    mean: float
    low: float
    high: float
    n: int
    inputs: int | None = None

    @property
    def above_zero(self) -> bool:
        """The whole interval lies above zero (a difference claimed as a gain)."""
        return self.low > 0.0

    def text(self, signed: bool = False) -> str:
        """`0.640 [0.500, 0.760] n=50` (signed: `+0.120 [+0.020, +0.220] n=50`)."""
        f = "{:+.3f}" if signed else "{:.3f}"
        units = f" ({self.inputs} inputs)" if self.inputs else ""
        return (
            f"{f.format(self.mean)} [{f.format(self.low)}, {f.format(self.high)}] n={self.n}{units}"
        )

    def as_dict(self) -> dict:
        out = {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}
        if self.inputs:
            out["inputs"] = self.inputs
        return out


def bootstrap_mean(
    values: Sequence[float],
    *,
    groups: Sequence[Hashable] | None = None,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Percentile-bootstrap interval of the mean of `values` (seeded, so reproducible).
    `groups` (one label per value, e.g. the row's input): resample the groups, not the rows."""
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise UserError(f"a bootstrap needs a non-empty list of scores, got {data.size} values")
    mean = float(data.mean())
    labels = _group_labels(groups, data.size)
    if data.size == 1 or np.all(data == data[0]):
        inputs = int(labels.max()) + 1 if labels is not None else None
        return Interval(mean, mean, mean, int(data.size), inputs)  # every resample: this mean
    if labels is not None:
        return _cluster_bootstrap(data, labels, confidence, n_resamples, seed)
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
    groups: Sequence[Hashable] | None = None,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Interval of mean(treated - control) over rows scored under both (same rows, in order);
    `groups` as in `bootstrap_mean`."""
    a, b = np.asarray(treated, dtype=float), np.asarray(control, dtype=float)
    if a.shape != b.shape:
        raise UserError(
            f"a paired comparison needs the same rows on both sides, got {a.size} and {b.size}"
        )
    return bootstrap_mean(
        a - b, groups=groups, confidence=confidence, n_resamples=n_resamples, seed=seed
    )


def _group_labels(groups: Sequence[Hashable] | None, n: int) -> np.ndarray | None:
    """Each row's group as 0..G-1 (first-seen order); None when every row is its own group."""
    if groups is None:
        return None
    groups = list(groups)
    if len(groups) != n:
        raise UserError(f"{len(groups)} group labels for {n} scores: one label per score")
    index: dict = {}
    labels = np.array([index.setdefault(g, len(index)) for g in groups], dtype=np.int64)
    return labels if len(index) < n else None


def _cluster_bootstrap(
    data: np.ndarray, labels: np.ndarray, confidence: float, n_resamples: int, seed: int
) -> Interval:
    """Resample the G groups with replacement; each resample's statistic is the mean over all
    rows of the drawn groups (so a group of three rows weighs three times a group of one)."""
    n_groups = int(labels.max()) + 1
    sums = np.bincount(labels, weights=data, minlength=n_groups)
    counts = np.bincount(labels, minlength=n_groups).astype(float)
    draws = np.random.default_rng(seed).integers(0, n_groups, size=(n_resamples, n_groups))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(data.mean()), float(low), float(high), int(data.size), n_groups)
