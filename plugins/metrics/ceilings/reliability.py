"""Split-half reliability of repeated measurements, with the Spearman-Brown correction.

For responses ``(repetition, stimulus, neuroid)``: split the repetitions at random into two halves, average each
half, correlate the two half-means across stimuli for every neuroid, and step the correlation up to the full number
of repetitions with the Spearman-Brown prophecy formula r_full = 2 r_half / (1 + r_half) (Spearman 1910; Brown 1910).
The reliability is the mean over random splits. With an odd number of repetitions the halves differ by one; the
usual factor of 2 is kept (as in Brain-Score's split-half consistency).
"""
from __future__ import annotations

import numpy as np
import torch

from cortexbench.errors import InputError

from .resampling import random_permutations


def spearman_brown(r, factor: float = 2.0):
    """Reliability of a measurement ``factor`` times as long: factor r / (1 + (factor - 1) r)."""
    r = np.asarray(r, dtype=float) if not isinstance(r, torch.Tensor) else r
    return factor * r / (1.0 + (factor - 1.0) * r)


def split_half_reliability(responses, *, n_splits: int = 100, random_state: int = 0, correct: bool = True,
                           batch: int = 16, device: str = "cpu") -> np.ndarray:
    """Per-neuroid split-half reliability of ``(repetition, stimulus, neuroid)`` responses (mean over ``n_splits``)."""
    x = torch.as_tensor(np.asarray(getattr(responses, "values", responses)) if not isinstance(responses, torch.Tensor)
                        else responses).to(device=device, dtype=torch.float64)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise InputError(f"responses must be (repetition, stimulus, neuroid), got shape {tuple(x.shape)}")
    reps, n = x.shape[0], x.shape[1]
    if reps < 2:
        raise InputError(f"split-half reliability needs at least 2 repetitions, got {reps}")
    if n < 3:
        raise InputError(f"split-half reliability needs at least 3 stimuli to correlate, got {n}")
    if not torch.isfinite(x).all():
        raise InputError("responses contain NaN or infinite values; drop incomplete repetitions first")
    half = reps // 2
    orders = random_permutations(reps, n_splits, random_state).to(device)
    total = torch.zeros(x.shape[2], dtype=torch.float64, device=device)
    for start in range(0, n_splits, batch):
        order = orders[start:start + batch]                                                   # (b, reps)
        first = torch.zeros(order.shape[0], reps, dtype=torch.float64, device=device)
        first.scatter_(1, order[:, :half], 1.0 / half)
        second = torch.zeros_like(first)
        second.scatter_(1, order[:, half:], 1.0 / (reps - half))
        a = torch.einsum("br,rnv->bnv", first, x)
        b = torch.einsum("br,rnv->bnv", second, x)
        r = _pearson_columns(a, b)                                                             # (b, v)
        total += (spearman_brown(r) if correct else r).sum(0)
    return (total / n_splits).cpu().numpy()


def _pearson_columns(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson r between matching columns over the stimulus axis (-2); NaN where a column is constant."""
    a = a - a.mean(-2, keepdim=True)
    b = b - b.mean(-2, keepdim=True)
    denom = torch.sqrt((a * a).sum(-2) * (b * b).sum(-2))
    return torch.where(denom > 0, (a * b).sum(-2) / denom, torch.full_like(denom, float("nan")))
