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


def ceiled_accuracy_bootstrap(correct: np.ndarray, counts: np.ndarray, ceiling: float | None = None, *,
                              n_bootstrap: int = 2000, ci: float = 0.95, random_state: int = 0):
    """Triplet bootstrap of ``accuracy / ceiling`` over the tested triplets.

    The unique test triplets, each with all its judgments, are resampled with replacement; a resample's accuracy is
    its correct judgments over its judgments. With ``ceiling=None`` the leave-one-out ceiling is recomputed on the
    same resample (the ceiling of exactly the tested triplets, so their sampling varies both together); a given
    ``ceiling`` (from another triplet set) is held fixed. Judgments of one triplet stay together, so their
    dependence is respected, unlike a binomial interval over judgments. Returns the ceilings plugin's
    ``BootstrapResult`` (estimate, samples, se, percentile low/high).
    """
    from cortexbench.plugins.metrics.ceilings.resampling import bootstrap_over_stimuli

    correct = np.asarray(correct, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if correct.ndim != 1 or counts.shape != (len(correct), 3) or not len(correct):
        raise InputError(f"need per-triplet correct judgments (n,) and counts (n, 3); got {correct.shape} and "
                         f"{counts.shape}")
    total = counts.sum(axis=1)
    loo = loo_accuracy_per_triplet(counts)
    repeated = np.isfinite(loo)
    if ceiling is None and not repeated.any():
        raise InputError("the tested triplets have no repeated judgments: pass the ceiling of another triplet set")
    loo = np.where(repeated, loo, 0.0)

    def statistic(index):
        index = index.numpy()
        accuracy = correct[index].sum(axis=1) / total[index].sum(axis=1)
        if ceiling is not None:
            return accuracy / ceiling
        with np.errstate(invalid="ignore", divide="ignore"):
            return accuracy / (loo[index].sum(axis=1) / repeated[index].sum(axis=1))

    return bootstrap_over_stimuli(statistic, len(correct), n_bootstrap=n_bootstrap, ci=ci, random_state=random_state,
                                  batch=500)
