"""Cross-validated ridge regression in torch: efficient leave-one-out alpha selection for many targets at once.

:class:`RidgeGCV` is a torch counterpart of scikit-learn's ``RidgeCV`` with its default efficient leave-one-out
(generalised cross-validation) and ``fit_intercept=True``: the design is centred, decomposed once
(``Xc = U S W^T`` through an eigendecomposition of the smaller Gram matrix), and every alpha then costs a few
small matrix products. :func:`ridge_cv` is the encoding protocol of Hoefling et al.
(bethgelab/alignment-pattern-analysis, ``LinearPredictivity``) built on it; see the README for the exact definitions
of its train and test scores.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cortexbench.errors import InputError

#: Hoefling et al.'s alpha grid.
DEFAULT_ALPHAS = np.logspace(0, 9, 19)


@dataclass
class RidgeCVResult:
    """Per-target scores of :func:`ridge_cv` (numpy arrays; NaN where there is no test data).

    ``train_r2``/``train_r``: cross-validated scores on the training data (each fold's model scored on its held-out
    fold, averaged over folds weighted by fold size). ``test_r2``/``test_r``: mean over the fold models of their score
    on the test data. ``alphas``: the alpha each fold chose, ``(n_splits, n_targets)``. ``test_r2_folds`` /
    ``test_r_folds``: the test scores of each fold model, ``(n_splits, n_targets)``.
    """

    train_r2: np.ndarray
    train_r: np.ndarray
    test_r2: np.ndarray
    test_r: np.ndarray
    alphas: np.ndarray
    test_r2_folds: np.ndarray
    test_r_folds: np.ndarray


def kfold_indices(n: int, n_splits: int = 5, shuffle: bool = True, random_state: int | None = 0
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs identical to ``sklearn.model_selection.KFold(n_splits, shuffle, random_state)``."""
    if not 2 <= n_splits <= n:
        raise InputError(f"n_splits must be between 2 and the number of samples ({n}), got {n_splits}")
    order = np.arange(n)
    if shuffle:
        np.random.RandomState(random_state).shuffle(order)
    sizes = np.full(n_splits, n // n_splits, dtype=int)
    sizes[: n % n_splits] += 1
    folds, start = [], 0
    for size in sizes:
        mask = np.zeros(n, dtype=bool)
        mask[order[start:start + size]] = True
        folds.append((np.flatnonzero(~mask), np.flatnonzero(mask)))  # both sorted, as sklearn
        start += size
    return folds


class RidgeGCV:
    """Ridge regression with alpha chosen by efficient leave-one-out error, as ``sklearn.linear_model.RidgeCV``.

    ``alpha_per_target=False`` picks the alpha with the lowest LOO mean squared error over all samples and targets;
    ``True`` picks one per target (as himalaya, and sklearn's ``alpha_per_target=True``); ``groups`` (one label per
    target) picks one alpha per group, as if each group were fitted on its own (e.g. many regions in one call). Ties
    keep the first alpha in grid order, as sklearn. After :meth:`fit`: ``alpha_`` (scalar or per target),
    ``coef_`` ``(n_features, n_targets)``, ``intercept_``, ``loo_mse_`` ``(n_alphas,)`` or ``(n_alphas, n_targets)``.
    """

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, *, alpha_per_target: bool = False,
                 groups: Sequence[int] | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype | None = None, n_targets_batch: int | None = None):
        self.alphas = _alphas(alphas)
        self.alpha_per_target = alpha_per_target
        self.groups = None if groups is None else np.asarray(groups)
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float32 if self.device.type == "cuda" else torch.float64)
        self.n_targets_batch = n_targets_batch

    # --- public ----------------------------------------------------------------------------------------------------
    def fit(self, X, Y) -> RidgeGCV:
        X, Y = self._tensor(X, "X"), self._tensor(Y, "Y")
        if Y.ndim == 1:
            Y = Y[:, None]
        if X.shape[0] != Y.shape[0]:
            raise InputError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}")
        self._decompose(X)
        alpha_index, self.loo_mse_ = self._select(Y)
        self.alpha_index_ = alpha_index
        chosen = self.alphas[alpha_index.cpu().numpy()]
        self.alpha_ = chosen if alpha_index.ndim else float(chosen)
        # primal coefficients: W diag(s / (s^2 + alpha)) U^T Yc
        shrink = self._shrink(alpha_index, scale=self.s_)                              # (r,) or (r, t)
        self.coef_ = self.W_ @ (shrink * (self.U_.T @ (Y - self.y_mean_)))
        self.intercept_ = self.y_mean_ - self.x_mean_ @ self.coef_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> torch.Tensor:
        X = self._tensor(X, "X")
        return X @ self.coef_ + self.intercept_

    # --- internals used by ridge_cv ----------------------------------------------------------------------------------
    def _tensor(self, x, what: str) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(self.device, self.dtype)
        if x.ndim not in (1, 2) or (what == "X" and x.ndim != 2):
            raise InputError(f"{what} must be a 2-D (sample, {'feature' if what == 'X' else 'target'}) array, "
                             f"got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise InputError(f"{what} contains NaN or infinite values; remove or impute them before fitting ridge")
        return x

    def _decompose(self, X: torch.Tensor) -> None:
        """Centre X and find U (n x r), s (r,), W (p x r) with Xc = U diag(s) W^T, via the smaller Gram matrix.

        The decomposition runs in float64 (it is small next to the target products); U, s, W are then stored in the
        working dtype. Leverages use float64 too: 1 - h_i can be tiny when alpha is small against the spectrum.
        """
        n, p = X.shape
        if n < 2:
            raise InputError(f"ridge needs at least 2 samples, got {n}")
        self.n_samples_ = n
        self.x_mean_ = X.mean(0)
        Xc = (X - self.x_mean_).double()
        gram = (Xc @ Xc.T) if n <= p else (Xc.T @ Xc)
        eigvals, eigvecs = torch.linalg.eigh(gram)
        keep = eigvals > eigvals.max().clamp_min(0) * max(n, p) * torch.finfo(torch.float64).eps * 10
        eigvals, eigvecs = eigvals[keep], eigvecs[:, keep]
        s = eigvals.sqrt()
        if n <= p:
            U, W = eigvecs, (Xc.T @ eigvecs) / s
        else:
            U, W = (Xc @ eigvecs) / s, eigvecs
        self.U_, self.W_, self.s_ = U.to(self.dtype), W.to(self.dtype), s.to(self.dtype)
        self.s2_ = self.s_ * self.s_
        self._s2_64 = eigvals
        self._U2_64 = U * U
        # the part of e_i outside span(U) and the constant: 1 - 1/n - ||U_i||^2 (0 when the design spans everything)
        self._outside_64 = (1.0 - 1.0 / n - self._U2_64.sum(1)).clamp_min(0.0)

    def _loo_weights(self) -> torch.Tensor:
        """(n_alphas, n) factors 1 / (1 - h_i)^2 that turn residuals into leave-one-out residuals."""
        rows = []
        for alpha in self.alphas:
            one_minus_h = self._outside_64 + self._U2_64 @ (alpha / (self._s2_64 + alpha))
            rows.append(1.0 / one_minus_h ** 2)
        return torch.stack(rows).to(self.dtype)

    def _select(self, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Alpha index (scalar, or per target) with the lowest leave-one-out mean squared error."""
        self.y_mean_ = Y.mean(0)
        batch = self.n_targets_batch or Y.shape[1]
        n, r, t = Y.shape[0], self.U_.shape[1], Y.shape[1]
        weights = self._loo_weights()                                                           # (A, n)
        if self.groups is not None and not self.alpha_per_target:
            labels, inverse = np.unique(self.groups, return_inverse=True)
            if len(self.groups) != t:
                raise InputError(f"groups has {len(self.groups)} labels for {t} targets")
            per_target = self._per_target_mse(Y, weights, batch)
            inverse_t = torch.as_tensor(inverse, device=self.device)
            sums = torch.zeros(len(self.alphas), len(labels), dtype=self.dtype, device=self.device)
            sums.index_add_(1, inverse_t, per_target)
            counts = torch.bincount(inverse_t, minlength=len(labels)).to(self.dtype)
            mse = sums / counts
            return _first_argmin(mse)[inverse_t], mse
        if self.alpha_per_target:
            mse = self._per_target_mse(Y, weights, batch)
            return _first_argmin(mse), mse
        # shared alpha: sum_t resid_it^2 from r x r statistics, accumulated over target batches
        C = torch.zeros(r, r, dtype=self.dtype, device=self.device)
        B = torch.zeros(n, r, dtype=self.dtype, device=self.device)
        q = torch.zeros(n, dtype=self.dtype, device=self.device)
        for start in range(0, t, batch):
            Yc = Y[:, start:start + batch] - self.y_mean_[start:start + batch]
            G = self.U_.T @ Yc
            Q = Yc - self.U_ @ G
            C += G @ G.T
            B += Q @ G.T
            q += (Q * Q).sum(1)
        mse = torch.empty(len(self.alphas), dtype=self.dtype, device=self.device)
        for a, alpha in enumerate(self.alphas):
            UE = self.U_ * (alpha / (self.s2_ + alpha))                                           # U diag(E)
            row = ((UE @ C) * UE).sum(1) + 2.0 * (UE * B).sum(1) + q                              # sum_t resid^2
            mse[a] = (weights[a] * row).sum() / (n * t)
        return _first_argmin(mse[:, None])[0], mse

    def _per_target_mse(self, Y: torch.Tensor, weights: torch.Tensor, batch: int) -> torch.Tensor:
        """(n_alphas, n_targets) leave-one-out mean squared errors: one (n x r) @ (r x t) product per alpha."""
        t = Y.shape[1]
        mse = torch.empty(len(self.alphas), t, dtype=self.dtype, device=self.device)
        for start in range(0, t, batch):
            Yc = Y[:, start:start + batch] - self.y_mean_[start:start + batch]
            G = self.U_.T @ Yc                                                                   # (r, tb)
            Q = Yc - self.U_ @ G                                                                  # outside span(U)
            for a, alpha in enumerate(self.alphas):
                resid = self.U_ @ ((alpha / (self.s2_ + alpha))[:, None] * G) + Q
                mse[a, start:start + batch] = (weights[a][:, None] * resid * resid).mean(0)
        return mse

    def _shrink(self, alpha_index: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """diag(scale / (s^2 + alpha)) as an (r,) or (r, t) factor for the chosen alpha(s)."""
        alphas = torch.as_tensor(self.alphas, dtype=self.dtype, device=self.device)[alpha_index]
        num = scale if scale is not None else torch.ones_like(self.s2_)
        if alphas.ndim == 0:
            return (num / (self.s2_ + alphas))[:, None]
        return num[:, None] / (self.s2_[:, None] + alphas[None, :])

    def _project(self, X: torch.Tensor) -> torch.Tensor:
        """A = (X - x_mean) W diag(s): predictions are A diag(1 / (s^2 + alpha)) U^T Yc."""
        return ((X - self.x_mean_) @ self.W_) * self.s_


def ridge_cv(X_train, Y_train, X_test=None, Y_test=None, *, alphas=DEFAULT_ALPHAS, n_splits: int = 5,
             shuffle: bool = True, random_state: int | None = 0, alpha_per_target: bool = False,
             device: str | torch.device = "cpu", n_targets_batch: int | None = None,
             dtype: torch.dtype | None = None, groups: Sequence[int] | None = None) -> RidgeCVResult:
    """Hoefling et al.'s cross-validated ridge encoding, for all targets at once.

    1. z-score X and Y with the training data's mean and (population) std; the test data with the same statistics.
    2. ``KFold(n_splits, shuffle, random_state)`` on the training data (identical folds to scikit-learn's).
    3. Per fold: :class:`RidgeGCV` (intercept, efficient LOO) on the other folds picks the alpha (shared by all
       targets, or per target) and predicts the held-out fold and the test data.
    4. Per target R^2 (as ``sklearn.metrics.r2_score``) and Pearson r. Train scores: fold scores averaged weighted by
       fold size (Hoefling et al. weight each fold's R^2 by its size). Test scores: the mean over the fold models.

    ``n_targets_batch`` bounds memory by processing targets in batches (results are identical). ``dtype`` defaults to
    float64 on the CPU and float32 on CUDA. ``groups`` (a label per target) shares one alpha per group instead of one
    for all targets: fitting several regions in one call then equals fitting each region on its own.
    """
    device = torch.device(device)
    dtype = dtype or (torch.float32 if device.type == "cuda" else torch.float64)
    Xtr, Ytr = _matrix(X_train, "X_train", device, dtype), _matrix(Y_train, "Y_train", device, dtype)
    if Xtr.shape[0] != Ytr.shape[0]:
        raise InputError(f"X_train has {Xtr.shape[0]} samples but Y_train has {Ytr.shape[0]}")
    has_test = X_test is not None or Y_test is not None
    if has_test and (X_test is None or Y_test is None):
        raise InputError("give both X_test and Y_test, or neither")
    x_mean, x_std = _standardiser(Xtr, "X_train", allow_constant=True)
    y_mean, y_std = _standardiser(Ytr, "Y_train", allow_constant=False)
    Xtr, Ytr = (Xtr - x_mean) / x_std, (Ytr - y_mean) / y_std
    if has_test:
        Xte, Yte = _matrix(X_test, "X_test", device, dtype), _matrix(Y_test, "Y_test", device, dtype)
        if Xte.shape[1] != Xtr.shape[1] or Yte.shape[1] != Ytr.shape[1] or Xte.shape[0] != Yte.shape[0]:
            raise InputError(f"test data {tuple(Xte.shape)} -> {tuple(Yte.shape)} do not match the training data "
                             f"{tuple(Xtr.shape)} -> {tuple(Ytr.shape)}")
        Xte, Yte = (Xte - x_mean) / x_std, (Yte - y_mean) / y_std
    n, t = Ytr.shape
    folds = kfold_indices(n, n_splits, shuffle, random_state)
    batch = n_targets_batch or t
    train_r2 = torch.zeros(t, dtype=torch.float64)
    train_r = torch.zeros(t, dtype=torch.float64)
    test_r2 = torch.full((n_splits, t), float("nan"), dtype=torch.float64)
    test_r = torch.full((n_splits, t), float("nan"), dtype=torch.float64)
    chosen = np.empty((n_splits, t))
    for f, (train, held) in enumerate(folds):
        train_t, held_t = torch.as_tensor(train, device=device), torch.as_tensor(held, device=device)
        model = RidgeGCV(alphas, alpha_per_target=alpha_per_target, groups=groups, device=device, dtype=dtype,
                         n_targets_batch=batch)
        X_fit = Xtr[train_t]
        model._decompose(X_fit)
        Y_fit = Ytr[train_t]
        alpha_index, _ = model._select(Y_fit)
        chosen[f] = model.alphas[alpha_index.cpu().numpy()]
        A_held = model._project(Xtr[held_t])
        A_test = model._project(Xte) if has_test else None
        for start in range(0, t, batch):
            cols = slice(start, start + batch)
            G = model.U_.T @ (Y_fit[:, cols] - model.y_mean_[cols])
            index = alpha_index[cols] if alpha_index.ndim else alpha_index
            coef = model._shrink(index) * G                                                      # (r, tb)
            pred = A_held @ coef + model.y_mean_[cols]
            r2, r = _scores(pred, Ytr[held_t][:, cols])
            train_r2[cols] += r2.cpu().double() * len(held) / n
            train_r[cols] += r.cpu().double() * len(held) / n
            if has_test:
                r2, r = _scores(A_test @ coef + model.y_mean_[cols], Yte[:, cols])
                test_r2[f, cols], test_r[f, cols] = r2.cpu().double(), r.cpu().double()
    with np.errstate(all="ignore"):
        mean_r2 = np.nanmean(test_r2.numpy(), 0) if has_test else test_r2[0].numpy()
        mean_r = np.nanmean(test_r.numpy(), 0) if has_test else test_r[0].numpy()
    return RidgeCVResult(train_r2=train_r2.numpy(), train_r=train_r.numpy(), test_r2=mean_r2, test_r=mean_r,
                         alphas=chosen, test_r2_folds=test_r2.numpy(), test_r_folds=test_r.numpy())


# --- helpers ---------------------------------------------------------------------------------------------------------


def _scores(pred: torch.Tensor, true: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column R^2 (against the column's own mean, as sklearn's r2_score) and Pearson r; NaN if undefined."""
    true_c = true - true.mean(0)
    ss_tot = (true_c * true_c).sum(0)
    ss_res = ((true - pred) ** 2).sum(0)
    nan = torch.tensor(float("nan"), dtype=true.dtype, device=true.device)
    r2 = torch.where(ss_tot > 0, 1.0 - ss_res / ss_tot, nan)
    pred_c = pred - pred.mean(0)
    denom = torch.sqrt(ss_tot * (pred_c * pred_c).sum(0))
    r = torch.where(denom > 0, (pred_c * true_c).sum(0) / denom, nan)
    return r2, r


def _first_argmin(values: torch.Tensor) -> torch.Tensor:
    """Index of the first minimum along dim 0 (sklearn keeps the first alpha on ties)."""
    best = values.min(0, keepdim=True).values
    hits = (values <= best).to(torch.int64)
    return hits.argmax(0)


def _standardiser(x: torch.Tensor, what: str, allow_constant: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std (numpy's default, as Hoefling et al.); constant features get std 1 (they become 0)."""
    mean, std = x.mean(0), x.std(0, correction=0)
    constant = std <= torch.finfo(x.dtype).eps * mean.abs().clamp_min(1.0) * 10
    if constant.any():
        if not allow_constant:
            bad = constant.nonzero().flatten()[:5].tolist()
            raise InputError(f"{what} has {int(constant.sum())} constant target column(s) (e.g. {bad}); their R^2 is "
                             "undefined. Drop constant targets (e.g. voxels outside the brain mask) first")
        std = torch.where(constant, torch.ones_like(std), std)
    return mean, std


def _matrix(x, what: str, device, dtype) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(getattr(x, "values", x)) if not isinstance(x, torch.Tensor) else x)
    x = x.to(device=device, dtype=dtype)
    if x.ndim != 2:
        raise InputError(f"{what} must be a 2-D (sample, feature) array, got shape {tuple(x.shape)}")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise InputError(f"{what} has shape {tuple(x.shape)}; it needs at least 2 samples and 1 column")
    if not torch.isfinite(x).all():
        raise InputError(f"{what} contains NaN or infinite values; remove or impute them first")
    return x


def _alphas(alphas) -> np.ndarray:
    values = np.asarray(alphas, dtype=float).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"alphas must be a non-empty list of positive numbers, got {alphas!r}")
    return values
