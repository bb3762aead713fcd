"""The leave-one-out noise ceiling of repeated odd-one-out triplets, and binomial intervals for accuracies.

For a triplet answered ``T`` times with counts ``c`` over the three positions, one response is held out at a time
and predicted by the majority of the others (ties shared equally):

    acc = sum_i (c_i / T) * [i in argmax(c - e_i)] / |argmax(c - e_i)|,

averaged over the triplets with ``T >= 2``. For counts [[10, 2, 3], [5, 5, 0], [7, 3, 0]] it is 0.455556.
"""
from __future__ import annotations

import numpy as np

from cortexbench.errors import InputError

#: Leave-one-out ceiling of the published THINGS test set 2 (Avitan & Golan 2025); used only without repeats.
PUBLISHED_CEILING = 0.678


def loo_accuracy_per_triplet(counts: np.ndarray) -> np.ndarray:
    """Leave-one-response-out majority accuracy of each triplet; NaN where fewer than 2 responses exist."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != 3 or (counts < 0).any():
        raise InputError(f"choice counts must be a non-negative (n, 3) array, got shape {counts.shape}")
    total = counts.sum(axis=1)
    accuracy = np.zeros(len(counts))
    for i in range(3):
        held_out = counts.copy()
        held_out[:, i] -= 1.0
        winners = held_out == held_out.max(axis=1, keepdims=True)
        share = np.where(winners[:, i], 1.0 / winners.sum(axis=1), 0.0)
        accuracy += np.where(counts[:, i] > 0, counts[:, i] / np.maximum(total, 1.0) * share, 0.0)
    return np.where(total >= 2, accuracy, np.nan)


def loo_ceiling(counts: np.ndarray) -> float:
    """Mean leave-one-out accuracy over triplets with at least two responses (NaN if there are none)."""
    per_triplet = loo_accuracy_per_triplet(counts)
    valid = np.isfinite(per_triplet)
    return float(per_triplet[valid].mean()) if valid.any() else float("nan")


def binomial_interval(successes: float, trials: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a proportion, as ``scipy.stats.binomtest(...).proportion_ci()``."""
    from scipy.stats import binomtest

    k, n = int(round(successes)), int(round(trials))
    if n <= 0:
        return float("nan"), float("nan")
    interval = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(interval.low), float(interval.high)
