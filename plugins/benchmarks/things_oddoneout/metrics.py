"""Recovery statistics from candidates' test accuracies: winners, recovery accuracy, reciprocal ranks, confusion.

As in the reference analysis (``tools/db_analysis.py``): the recovered model of a simulation is the candidate with
the highest mean test accuracy; recovery accuracy is the share of seeds in which that is the generator, with an
exact binomial interval; the reciprocal rank is 1 / (the generator's rank among the candidates, ties given their
average rank); the confusion matrix counts how often each candidate is recovered for each generator. The reference
breaks ties for the winner by list order; we break them uniformly at random (seeded) so that no candidate is
favoured by its position, and report how many simulations had ties.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .noise_ceiling import binomial_interval


def winners(test_accuracy: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Recovered candidate index and tie flag for accuracies (generator, candidate, ...) -> (generator, ...)."""
    acc = np.moveaxis(np.asarray(test_accuracy, dtype=np.float64), 1, -1)
    best = acc.max(axis=-1, keepdims=True)
    is_best = acc >= best
    noise = np.random.default_rng(seed).random(acc.shape)
    choice = np.where(is_best, noise, -1.0).argmax(axis=-1)
    return choice, is_best.sum(axis=-1) > 1


def reciprocal_ranks(test_accuracy: np.ndarray, generator_columns: np.ndarray) -> np.ndarray:
    """1 / rank of each generator among the candidates (rank 1 = most accurate; ties averaged)."""
    acc = np.moveaxis(np.asarray(test_accuracy, dtype=np.float64), 1, -1)
    ranks = rankdata(-acc, method="average", axis=-1)
    columns = np.asarray(generator_columns, dtype=np.int64).reshape((-1,) + (1,) * (acc.ndim - 1))
    own = np.take_along_axis(ranks, np.broadcast_to(columns, acc.shape[:-1] + (1,)), axis=-1)[..., 0]
    return 1.0 / own


def recovery_accuracy(winner: np.ndarray, generator_columns: np.ndarray, seed_axis: int) -> tuple[np.ndarray, ...]:
    """Share of seeds in which the generator was recovered, with exact 95% intervals; arrays without the seed axis."""
    hit = winner == generator_columns.reshape((-1,) + (1,) * (winner.ndim - 1))
    k = hit.sum(axis=seed_axis)
    n = hit.shape[seed_axis]
    low = np.vectorize(lambda kk: binomial_interval(kk, n)[0])(k)
    high = np.vectorize(lambda kk: binomial_interval(kk, n)[1])(k)
    return k / n, low, high, k


def confusion(winner: np.ndarray, n_candidates: int, seed_axis: int) -> np.ndarray:
    """Counts (generator, candidate, rest...) of how often each candidate was recovered."""
    counts = np.stack([(winner == c).sum(axis=seed_axis) for c in range(n_candidates)], axis=1)
    return counts
