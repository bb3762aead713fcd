"""Batched RSA and ridge encoding for many predictors and targets at once (GPU when given).

* RSA (Höfling et al.): RDM = 1 - Pearson r between stimuli, RDMs compared by Pearson r of their upper triangles.
  All RDMs of a split are computed once and every (predictor, target) pair comes out of one matrix product
  (``cortexbench.plugins.metrics.rsa.functional``).
* Ridge (Höfling et al.'s ``LinearPredictivity``): X and Y z-scored with train statistics; ``KFold(5, shuffle,
  random_state=1)`` on the train stimuli; per fold a ridge with intercept whose alpha (grid logspace(0, 9, 19)) is
  chosen by efficient leave-one-out error *shared by the vertices of one target region of one subject* (the authors
  fit one ``RidgeCV`` per (layer, region, subject)); score = R^2 averaged over the region's vertices (sklearn's
  ``score``). Train score: held-out fold scores weighted by fold size; test score: mean over the five fold models.

  :func:`grouped_ridge_cv` does this for all regions and subjects of a predictor with one eigendecomposition per
  fold: the ridge metric's ``ridge_cv`` with ``groups`` averages the LOO errors of every alpha within each group and
  gives each group its own alpha, which equals fitting each group on its own (the tests check this).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.ridge.functional import ridge_cv
from cortexbench.plugins.metrics.rsa import functional as rsa_f

from .protocol import RIDGE_ALPHAS, RIDGE_FOLDS, RIDGE_SEED


def _dtype(device: str | torch.device) -> torch.dtype:
    return torch.float32 if torch.device(device).type == "cuda" else torch.float64


# --- RSA ---------------------------------------------------------------------------------------------------
def condensed_rdms(features: Sequence[np.ndarray | torch.Tensor], device: str = "cpu") -> torch.Tensor:
    """``(k, n (n - 1) / 2)`` upper triangles of the 1 - Pearson RDMs of ``k`` feature matrices ``(n, d_i)``."""
    dtype = _dtype(device)
    out = [rsa_f.upper(rsa_f.rdm(rsa_f.as_tensor(f, device, dtype), "correlation")) for f in features]
    return torch.stack(out)


def rsa_scores(predictors: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Pearson r of every predictor RDM with every target RDM: ``(A, B)``."""
    return rsa_f.compare(predictors, targets, "pearson").double().cpu().numpy()


# --- ridge -------------------------------------------------------------------------------------------------
@dataclass
class GroupedRidgeResult:
    """Per-group scores: ``train`` and ``test`` R^2 (mean over the group's targets), ``alphas`` (fold, group)."""

    train: np.ndarray
    test: np.ndarray
    alphas: np.ndarray
    test_folds: np.ndarray


def _group_mean(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``values`` (..., t) over the targets of each group: (..., G)."""
    return np.stack([values[..., groups == g].mean(-1) for g in range(n_groups)], axis=-1)


def grouped_ridge_cv(X_train, Y_train, X_test, Y_test, groups: Sequence[int], *, alphas=RIDGE_ALPHAS,
                     n_splits: int = RIDGE_FOLDS, random_state: int = RIDGE_SEED, device: str = "cpu",
                     n_targets_batch: int | None = 20000) -> GroupedRidgeResult:
    """Höfling et al.'s linear predictivity for many target groups that share one predictor matrix.

    One :func:`~cortexbench.plugins.metrics.ridge.functional.ridge_cv` call with ``groups``: per fold the design is
    decomposed once, the leave-one-out errors of every alpha are averaged within each group (= the LOO error of a
    ridge fitted to the group alone) and each group takes its best alpha; the per-target R^2 are then averaged per
    group (sklearn's ``score`` over a region's vertices).
    """
    group_ids = np.asarray(groups)
    n_targets = np.shape(Y_train)[1] if np.ndim(Y_train) == 2 else None
    if group_ids.shape != (n_targets,):
        raise InputError(f"ridge: groups must give one group per target column ({n_targets}), got {group_ids.shape}")
    _, group_index = np.unique(group_ids, return_inverse=True)
    n_groups = int(group_index.max()) + 1
    result = ridge_cv(X_train, Y_train, X_test, Y_test, alphas=alphas, n_splits=n_splits, shuffle=True,
                      random_state=random_state, device=device, n_targets_batch=n_targets_batch,
                      groups=group_index)
    first = np.array([np.flatnonzero(group_index == g)[0] for g in range(n_groups)])
    test_folds = _group_mean(result.test_r2_folds, group_index, n_groups)
    with np.errstate(all="ignore"):
        test = np.nanmean(test_folds, 0)
    return GroupedRidgeResult(_group_mean(result.train_r2, group_index, n_groups), test,
                              result.alphas[:, first], test_folds)
