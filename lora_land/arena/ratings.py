"""Bradley-Terry ratings from arena outcomes, on an Elo-like scale, with bootstrap intervals.

The model: P(i beats j) = 1 / (1 + exp(θj - θi)). θ is fitted by maximum likelihood with
`scipy.optimize.minimize` (trust-exact Newton, analytic gradient and Hessian) on the
aggregated pair counts, ties counted as half a win for each side (as FastChat does). A weak
Gaussian prior on θ (`prior`, in natural-log units; 0 turns it off) keeps a contestant that
never lost finite. Ratings are
`1000 + 400 * θ / ln 10`, centred so that their mean is 1000; 95% intervals are the 2.5th and
97.5th percentiles over bootstrap resamples of the battles (FastChat: 100 rounds).

This module is maths on (left, right, outcome) triples; it reads no database and shows nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

SCALE = 400.0
BASE = 10.0
INIT = 1000.0
PRIOR = 0.01  # Gaussian prior precision on θ (natural-log units): keeps unbeaten players finite
Battle = tuple[str, str, str]  # (left id, right id, outcome: "left" | "right" | "tie")


@dataclass(frozen=True)
class Rating:
    contestant: str
    rating: float
    low: float  # 95% bootstrap interval
    high: float
    votes: int  # battles this contestant was in
    wins: int
    losses: int
    ties: int


def players_of(battles: Sequence[Battle]) -> list[str]:
    return sorted({b[0] for b in battles} | {b[1] for b in battles})


def pair_counts(battles: Sequence[Battle], players: Sequence[str]) -> np.ndarray:
    """W[i, j]: wins of player i over player j, a tie adding 0.5 to both."""
    left, right, share = _encode(battles, players)
    return _counts(left, right, share, len(players))


def _encode(battles: Sequence[Battle], players: Sequence[str]):
    """(left index, right index, left's share of the win: 1, 0 or 0.5 for a tie) arrays."""
    index = {p: i for i, p in enumerate(players)}
    left = np.fromiter((index[b[0]] for b in battles), dtype=np.int64, count=len(battles))
    right = np.fromiter((index[b[1]] for b in battles), dtype=np.int64, count=len(battles))
    value = {"left": 1.0, "right": 0.0, "tie": 0.5}
    share = np.fromiter((value[b[2]] for b in battles), dtype=float, count=len(battles))
    return left, right, share


def _counts(left: np.ndarray, right: np.ndarray, share: np.ndarray, n: int) -> np.ndarray:
    wins = np.bincount(left * n + right, weights=share, minlength=n * n)
    wins += np.bincount(right * n + left, weights=1.0 - share, minlength=n * n)
    return wins.reshape(n, n)


def fit_strengths(wins: np.ndarray, prior: float = PRIOR) -> np.ndarray:
    """θ maximising the Bradley-Terry likelihood of the win matrix (mean θ = 0).

    The negative log-likelihood is convex; scipy's `trust-exact` Newton method gets its exact
    gradient and Hessian (a few milliseconds for a dozen contestants, whatever the votes)."""
    n = wins.shape[0]
    games = wins + wins.T
    ridge = prior * np.eye(n)

    def negative_log_likelihood(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[:, None] - theta[None, :]
        value = -(wins * log_expit(diff)).sum() + 0.5 * prior * theta @ theta
        g = wins * expit(-diff)  # d/dθi of W_ij log σ(θi - θj)
        grad = -(g.sum(axis=1) - g.sum(axis=0)) + prior * theta
        return float(value), grad

    def hessian(theta: np.ndarray) -> np.ndarray:
        p = expit(theta[:, None] - theta[None, :])
        c = games * p * (1 - p)  # each pair's Fisher information
        h = -c
        np.fill_diagonal(h, c.sum(axis=1) - np.diag(c))
        return h + ridge

    result = minimize(
        negative_log_likelihood,
        np.zeros(n),
        jac=True,
        hess=hessian,
        method="trust-exact",
        options={"gtol": 1e-8, "maxiter": 200},
    )
    theta = result.x
    return theta - theta.mean()


def to_scale(theta: np.ndarray) -> np.ndarray:
    """Natural-log strengths to the Elo-like scale (400 points = 10:1 odds, mean 1000)."""
    return INIT + SCALE * theta / math.log(BASE)


def bradley_terry(battles: Sequence[Battle], prior: float = PRIOR) -> dict[str, float]:
    """Each contestant's rating (no intervals)."""
    players = players_of(battles)
    if not players:
        return {}
    ratings = to_scale(fit_strengths(pair_counts(battles, players), prior))
    return dict(zip(players, (float(r) for r in ratings), strict=True))


def rate(
    battles: Sequence[Battle], resamples: int = 100, seed: int = 0, prior: float = PRIOR
) -> list[Rating]:
    """Ratings with 95% bootstrap intervals and win/loss/tie counts, best first."""
    players = players_of(battles)
    if not players:
        return []
    left, right, share = _encode(battles, players)
    n = len(players)
    point = to_scale(fit_strengths(_counts(left, right, share, n), prior))
    rng = np.random.default_rng(seed)
    samples = np.empty((resamples, n))
    for k in range(resamples):
        pick = rng.integers(0, len(battles), len(battles))
        counts = _counts(left[pick], right[pick], share[pick], n)
        samples[k] = to_scale(fit_strengths(counts, prior))
    low, high = np.percentile(samples, [2.5, 97.5], axis=0) if resamples else (point, point)
    out = []
    for i, player in enumerate(players):
        mine = (left == i) | (right == i)
        won = ((left == i) & (share == 1.0)) | ((right == i) & (share == 0.0))
        tied = mine & (share == 0.5)
        out.append(
            Rating(
                player,
                float(point[i]),
                float(low[i]),
                float(high[i]),
                int(mine.sum()),
                int(won.sum()),
                int(mine.sum() - won.sum() - tied.sum()),
                int(tied.sum()),
            )
        )
    return sorted(out, key=lambda r: -r.rating)
