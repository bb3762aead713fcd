"""Inter-subject noise ceilings: how well one subject's data are predicted by other subjects' data.

* Pairwise subject-to-subject ("lower"): each subject predicted by each single other subject, with the same metric
  a model is scored with; a subject's ceiling is the mean over the other subjects (Shen et al.'s cross-subject CKA;
  Hoefling et al.'s pairwise brain-to-brain runs).
* Leave-one-subject-out ("upper"): each subject predicted by the mean of all other subjects (in a shared response
  space: RDMs, kernels, surface vertices). Averaging removes part of the predictor's noise, so it is the higher one.

Both work on features (running a metric) and on stored score arrays (reducing brain-to-brain assemblies).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
import xarray as xr

from cortexbench.errors import InputError

Metric = Callable[[np.ndarray, np.ndarray], object]


def pairwise_subject_scores(subjects: Sequence, metric: Metric) -> np.ndarray:
    """``(source, target, ...)`` scores of ``metric(subjects[source], subjects[target])``; NaN where source == target.

    Subjects may have different numbers of neuroids (each is ``(stimulus, neuroid)``) but must share the stimuli.
    """
    data = [np.asarray(getattr(s, "values", s), dtype=float) for s in subjects]
    _check_subjects(data)
    results = {(s, t): np.asarray(metric(data[s], data[t]), dtype=float)
               for s in range(len(data)) for t in range(len(data)) if s != t}
    out = np.full((len(data), len(data), *results[0, 1].shape), np.nan)
    for (s, t), value in results.items():
        out[s, t] = value
    return out


def loso_subject_scores(subjects, metric: Metric) -> np.ndarray:
    """``(subject, ...)``: ``metric(mean of the other subjects, subject)`` for subjects in a shared space."""
    data = getattr(subjects, "values", subjects)
    shapes = {np.shape(s) for s in data}
    data = np.asarray(data, dtype=float) if len(shapes) == 1 else np.empty(0)
    if data.ndim != 3:
        raise InputError("leave-one-subject-out needs subjects in one shared response space, as a (subject, "
                         f"stimulus, neuroid) array; got shape {data.shape}. Use pairwise_subject_scores for "
                         "subjects with different neuroids")
    _check_subjects(list(data))
    others = leave_one_out_means(data)
    return np.stack([np.asarray(metric(others[s], data[s]), dtype=float) for s in range(len(data))])


def leave_one_out_means(data):
    """``(subject, ...)`` -> for every subject the mean of the *other* subjects, in one pass (numpy or torch).

    The one implementation of the leave-one-subject-out predictor: :func:`loso_subject_scores` applies any metric
    to it, and the RSA metric's ``loso_ceiling`` (condensed RDMs, batched in torch on the compute device) uses it too.
    """
    count = data.shape[0]
    if count < 2:
        raise InputError(f"a leave-one-subject-out predictor needs at least 2 subjects, got {count}")
    return (data.sum(0)[None] - data) / (count - 1)


def pairwise_ceiling(scores, source_dim: str = "source_subject", target_dim: str = "subject"):
    """Lower ceiling per target subject from pairwise scores: the mean over the *other* source subjects.

    ``scores`` is a DataArray with ``source_dim`` and ``target_dim`` (the brain-to-brain assembly layout; entries
    where the source is the target are ignored whether or not they are NaN), or an array whose first two axes are
    (source, target).
    """
    if isinstance(scores, xr.DataArray):
        for dim in (source_dim, target_dim):
            if dim not in scores.dims:
                raise InputError(f"pairwise scores need a {dim!r} dimension, got dims {scores.dims}")
        sources, targets = scores[source_dim].values, scores[target_dim].values
        same = xr.DataArray(np.equal.outer(sources.astype(str), targets.astype(str)), dims=(source_dim, target_dim))
        kept = scores.where(~same)
        _require_other_subjects(kept.count(source_dim))
        out = kept.mean(source_dim, skipna=True)
        out.attrs = {**scores.attrs, "ceiling": f"pairwise: mean over other {source_dim}s"}
        return out
    values = np.array(scores, dtype=float)
    if values.ndim < 2 or values.shape[0] != values.shape[1]:
        raise InputError(f"pairwise scores must be (source, target, ...) with equal subject axes, got {values.shape}")
    index = np.arange(values.shape[0])
    values[index, index] = np.nan
    _require_other_subjects(np.isfinite(values).sum(0))
    with np.errstate(all="ignore"):
        return np.nanmean(values, axis=0)


def _require_other_subjects(counts) -> None:
    if (np.asarray(counts) == 0).any():
        raise InputError("a target subject has no scores from any other subject; a pairwise ceiling needs at least "
                         "2 subjects with finite scores")


def _check_subjects(data: list[np.ndarray]) -> None:
    if len(data) < 2:
        raise InputError(f"an inter-subject ceiling needs at least 2 subjects, got {len(data)}")
    counts = {d.shape[0] for d in data}
    if len(counts) != 1:
        raise InputError(f"subjects hold different numbers of stimuli {sorted(counts)}; align them to the shared "
                         "stimuli first")


@dataclass
class SubjectStatistics:
    """Mean over subjects, its standard error (ddof 1), and a one-sample t-test of the mean against ``popmean``."""

    mean: np.ndarray
    sem: np.ndarray
    t: np.ndarray
    p: np.ndarray
    n: int


def across_subjects(scores, axis: int = -1, popmean: float = 0.0) -> SubjectStatistics:
    """Group statistics of per-subject scores, as used to report RSA results (e.g. Net2Brain's SEM and p-value)."""
    values = np.moveaxis(np.asarray(getattr(scores, "values", scores), dtype=float), axis, -1)
    n = values.shape[-1]
    if n < 2:
        raise InputError(f"statistics across subjects need at least 2 subjects, got {n}")
    mean = values.mean(-1)
    sem = values.std(-1, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean - popmean) / sem
    p = 2.0 * scipy.stats.t.sf(np.abs(t), df=n - 1)
    return SubjectStatistics(mean=mean, sem=sem, t=t, p=p, n=n)
