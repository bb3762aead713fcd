"""Bootstrap confidence intervals and permutation p-values, vectorised over resamples.

* Bootstrap: resample subjects (or stimuli) with replacement, recompute the statistic for every resample at once,
  report the percentile interval (Efron & Tibshirani 1993) and the bootstrap standard error.
* Permutation: shuffle the stimulus labels of one side, recompute the statistic for every permutation, and report
  p = (1 + #{null >= observed}) / (1 + n_permutations) (Phipson & Smyth 2010), which is never 0 and is exact in
  level; with ``all_permutations`` the test is exact.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cortexbench.errors import InputError

ALTERNATIVES = ("greater", "less", "two-sided")


@dataclass
class BootstrapResult:
    """``estimate``: the statistic on the original data; ``samples``: one value per resample (first axis);
    ``se``: their standard deviation; ``low``/``high``: the percentile interval at level ``ci``."""

    estimate: np.ndarray
    samples: np.ndarray
    se: np.ndarray
    low: np.ndarray
    high: np.ndarray
    ci: float


def resample_indices(n: int, n_bootstrap: int, random_state: int = 0) -> torch.Tensor:
    """``(n_bootstrap, n)`` indices drawn with replacement (a seeded torch generator: identical on every machine)."""
    if n < 1 or n_bootstrap < 1:
        raise InputError(f"bootstrap needs n >= 1 and n_bootstrap >= 1, got n={n}, n_bootstrap={n_bootstrap}")
    generator = torch.Generator().manual_seed(int(random_state))
    return torch.randint(0, n, (n_bootstrap, n), generator=generator)


def percentile_interval(samples: np.ndarray, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along the first axis (NaN resamples ignored)."""
    if not 0 < ci < 1:
        raise InputError(f"ci must be between 0 and 1, got {ci}")
    tail = 100 * (1 - ci) / 2
    return np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100 - tail, axis=0)


def bootstrap_over_subjects(scores, axis: int = -1, *, n_bootstrap: int = 1000, ci: float = 0.95,
                            random_state: int = 0) -> BootstrapResult:
    """CI of the mean over subjects: resample the ``axis`` of ``scores`` (e.g. ``(layer, region, subject)``)."""
    values = np.moveaxis(np.asarray(scores, dtype=float), axis, -1)
    if values.shape[-1] < 2:
        raise InputError(f"bootstrapping over subjects needs at least 2 subjects, got {values.shape[-1]}")
    index = resample_indices(values.shape[-1], n_bootstrap, random_state).numpy()           # (B, S)
    samples = np.moveaxis(values[..., index].mean(-1), -1, 0)                                # (B, ...)
    return _result(values.mean(-1), samples, ci)


def bootstrap_over_stimuli(statistic: Callable[[torch.Tensor], torch.Tensor | np.ndarray], n_stimuli: int, *,
                           n_bootstrap: int = 1000, ci: float = 0.95, random_state: int = 0,
                           batch: int = 100) -> BootstrapResult:
    """CI of any statistic of the stimuli: ``statistic(indices)`` maps ``(b, n)`` index batches to ``(b, ...)``.

    The statistic is called with the identity first (the estimate), then with the resamples in batches of ``batch``.
    """
    estimate = np.asarray(_numpy(statistic(torch.arange(n_stimuli)[None])))[0]
    index = resample_indices(n_stimuli, n_bootstrap, random_state)
    samples = np.concatenate([_numpy(statistic(index[s:s + batch])) for s in range(0, n_bootstrap, batch)])
    return _result(estimate, samples, ci)


def random_permutations(n: int, n_permutations: int, random_state: int = 0) -> torch.Tensor:
    """``(n_permutations, n)`` independent uniform random permutations (seeded)."""
    if n < 2 or n_permutations < 1:
        raise InputError(f"permutations need n >= 2 and n_permutations >= 1, got {n}, {n_permutations}")
    generator = torch.Generator().manual_seed(int(random_state))
    return torch.rand(n_permutations, n, generator=generator).argsort(1)


def all_permutations(n: int) -> torch.Tensor:
    """Every permutation of ``n`` items, identity first (an exact test); only for small ``n``."""
    if n > 9:
        raise InputError(f"all {n}! permutations of {n} stimuli are too many; use random permutations")
    return torch.tensor(list(itertools.permutations(range(n))))


def permutation_p_value(observed, null, alternative: str = "greater") -> np.ndarray:
    """p-value of ``observed`` (any shape) against ``null`` (``(n_permutations, *shape)``).

    For an exact test over all permutations (identity included) p = #{null >= observed} / n_permutations; otherwise
    the (1 + count) / (1 + n) estimate, which keeps the level exact for random permutations.
    """
    if alternative not in ALTERNATIVES:
        raise InputError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    observed, null = np.asarray(observed, dtype=float), np.asarray(null, dtype=float)
    tol = 1e-12 * np.maximum(1.0, np.abs(observed))  # ties with the observed value count as "at least as extreme"
    if alternative == "greater":
        count = (null >= observed - tol).sum(0)
    elif alternative == "less":
        count = (null <= observed + tol).sum(0)
    else:
        centre = np.nanmean(null, 0)
        count = (np.abs(null - centre) >= np.abs(observed - centre) - tol).sum(0)
    return (1.0 + count) / (1.0 + null.shape[0])


def exact_p_value(observed, null, alternative: str = "greater") -> np.ndarray:
    """p-value when ``null`` holds the statistic for *every* permutation, the identity included."""
    p = permutation_p_value(observed, null, alternative)
    n = np.asarray(null).shape[0]
    return (p * (1.0 + n) - 1.0) / n


def _result(estimate, samples, ci: float) -> BootstrapResult:
    samples = np.asarray(samples, dtype=float)
    low, high = percentile_interval(samples, ci)
    with np.errstate(all="ignore"):
        se = np.nanstd(samples, axis=0, ddof=1)
    return BootstrapResult(estimate=np.asarray(estimate, dtype=float), samples=samples, se=se, low=low, high=high,
                           ci=ci)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

