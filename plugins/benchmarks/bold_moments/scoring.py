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
  fold, built on the ridge metric's ``RidgeGCV`` solver and ``kfold_indices``: the LOO errors of every alpha and
  vertex are averaged within each group and each group gets its own alpha. (``ridge_cv`` shares one alpha across all
  targets of a call; for a single group the two agree, which the tests check.)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.ridge.functional import RidgeGCV, kfold_indices
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


def _zscore(train: torch.Tensor, test: torch.Tensor, what: str, allow_constant: bool
            ) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0), train.std(0, correction=0)
    constant = std <= torch.finfo(train.dtype).eps * mean.abs().clamp_min(1.0) * 10
    if constant.any():
        if not allow_constant:
            raise InputError(f"{what}: {int(constant.sum())} constant target column(s); their R^2 is undefined")
        std = torch.where(constant, torch.ones_like(std), std)
    return (train - mean) / std, (test - mean) / std


def _r2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    true_c = true - true.mean(0)
    ss_tot = (true_c * true_c).sum(0)
    ss_res = ((true - pred) ** 2).sum(0)
    return 1.0 - ss_res / ss_tot


def _group_mean(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean of ``values`` (..., t) over the targets of each group: (..., G)."""
    shape = (*values.shape[:-1], n_groups)
    total = torch.zeros(shape, dtype=values.dtype, device=values.device)
    total.index_add_(values.ndim - 1, groups, values)
    count = torch.bincount(groups, minlength=n_groups).to(values.dtype)
    return total / count


def grouped_ridge_cv(X_train, Y_train, X_test, Y_test, groups: Sequence[int], *, alphas=RIDGE_ALPHAS,
                     n_splits: int = RIDGE_FOLDS, random_state: int = RIDGE_SEED, device: str = "cpu",
                     n_targets_batch: int | None = 20000) -> GroupedRidgeResult:
    """Höfling et al.'s linear predictivity for many target groups that share one predictor matrix.

    Per fold, ``RidgeGCV`` (the ridge metric's solver) decomposes the design once and gives the leave-one-out error
    of every alpha for every target; those are averaged within each group (= the LOO error of a ridge fitted to the
    group alone) and each group takes its best alpha.
    """
    dtype = _dtype(device)
    as_t = lambda x: torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(device, dtype)  # noqa: E731
    Xtr, Xte, Ytr, Yte = as_t(X_train), as_t(X_test), as_t(Y_train), as_t(Y_test)
    if Xtr.shape[0] != Ytr.shape[0] or Xte.shape[0] != Yte.shape[0] or Ytr.shape[1] != Yte.shape[1]:
        raise InputError(f"ridge: shapes do not match: X_train {tuple(Xtr.shape)}, Y_train {tuple(Ytr.shape)}, "
                         f"X_test {tuple(Xte.shape)}, Y_test {tuple(Yte.shape)}")
    for name, x in (("X_train", Xtr), ("Y_train", Ytr), ("X_test", Xte), ("Y_test", Yte)):
        if not torch.isfinite(x).all():
            raise InputError(f"ridge: {name} contains NaN or infinite values")
    group_ids = np.asarray(groups)
    if group_ids.shape != (Ytr.shape[1],):
        raise InputError(f"ridge: groups must give one group per target column ({Ytr.shape[1]}), got {group_ids.shape}")
    _, group_index = np.unique(group_ids, return_inverse=True)
    n_groups = int(group_index.max()) + 1
    g = torch.as_tensor(group_index, device=device)
    Xtr, Xte = _zscore(Xtr, Xte, "X", allow_constant=True)
    Ytr, Yte = _zscore(Ytr, Yte, "Y", allow_constant=False)
    n, t = Ytr.shape
    batch = n_targets_batch or t
    train = torch.zeros(n_groups, dtype=torch.float64, device=device)
    test_folds = torch.zeros(n_splits, n_groups, dtype=torch.float64, device=device)
    chosen = np.empty((n_splits, n_groups))
    for f, (fit, held) in enumerate(kfold_indices(n, n_splits, True, random_state)):
        fit_t, held_t = torch.as_tensor(fit, device=device), torch.as_tensor(held, device=device)
        model = RidgeGCV(alphas, alpha_per_target=True, device=device, dtype=dtype, n_targets_batch=batch)
        model._decompose(Xtr[fit_t])
        Y = Ytr[fit_t]
        _, mse = model._select(Y)                                                        # (A, t) LOO errors
        best = _group_mean(mse.double(), g, n_groups).argmin(0)    # first minimum on ties, as sklearn
        chosen[f] = model.alphas[best.cpu().numpy()]
        index = best[g]                                                                  # alpha index per target
        A_held, A_test = model._project(Xtr[held_t]), model._project(Xte)
        r2_held = torch.empty(t, dtype=dtype, device=device)
        r2_test = torch.empty(t, dtype=dtype, device=device)
        for start in range(0, t, batch):
            cols = slice(start, start + batch)
            coef = model._shrink(index[cols]) * (model.U_.T @ (Y[:, cols] - model.y_mean_[cols]))
            r2_held[cols] = _r2(A_held @ coef + model.y_mean_[cols], Ytr[held_t][:, cols])
            r2_test[cols] = _r2(A_test @ coef + model.y_mean_[cols], Yte[:, cols])
        train += _group_mean(r2_held.double(), g, n_groups) * len(held) / n
        test_folds[f] = _group_mean(r2_test.double(), g, n_groups)
    test_folds_np = test_folds.cpu().numpy()
    with np.errstate(all="ignore"):
        test = np.nanmean(test_folds_np, 0)
    return GroupedRidgeResult(train.cpu().numpy(), test, chosen, test_folds_np)
