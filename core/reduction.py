"""Feature reduction fitted on training stimuli, scikit-learn style, on numpy arrays or torch tensors (GPU too).

* :class:`SparseRandomProjection`: Höfling et al. project every flattened layer with scikit-learn's
  ``SparseRandomProjection`` to the Johnson-Lindenstrauss dimension of the number of training stimuli (eps 0.1,
  seed 1234). This is the same estimator (Li et al. 2006 "very sparse" projection: density ``1 / sqrt(d)``,
  entries ``+-sqrt(1 / density) / sqrt(k)`` with probability ``density / 2`` each, zero otherwise), with the matrix
  drawn from numpy's ``default_rng(random_state)`` so it is identical on every device; it is not bit-identical to
  scikit-learn's draw (another random stream), only identically distributed.
* :class:`PCA`: principal components of the centred training features, keeping the fewest components that explain
  at least ``variance`` of the variance (scikit-learn's rule for a fractional ``n_components``).

``transform`` returns the type it is given: numpy in, numpy out; a tensor in, a tensor out on the same device.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .errors import InputError


def johnson_lindenstrauss_min_dim(n_samples: int, eps: float = 0.1) -> int:
    """Smallest k that keeps pairwise distances of ``n_samples`` points within ``1 +- eps`` (as scikit-learn)."""
    if not 0 < eps < 1:
        raise InputError(f"eps must be in (0, 1), got {eps}")
    if n_samples < 1:
        raise InputError(f"n_samples must be positive, got {n_samples}")
    return int(4 * math.log(n_samples) / (eps ** 2 / 2 - eps ** 3 / 3))


def _as_2d(X: Any, what: str):
    if _is_tensor(X):
        if X.ndim != 2:
            raise InputError(f"{what} must be 2-D (samples, features), got shape {tuple(X.shape)}")
        return X
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"{what} must be 2-D (samples, features), got shape {X.shape}")
    return X


def _is_tensor(X: Any) -> bool:
    return type(X).__module__.startswith("torch") and hasattr(X, "device")


def _float(X):
    """Float working copy: float64 for float64 input, else float32."""
    if _is_tensor(X):
        import torch

        return X if X.dtype in (torch.float32, torch.float64) else X.float()
    return X if X.dtype in (np.float32, np.float64) else X.astype(np.float32)


class SparseRandomProjection:
    """Very sparse random projection to ``n_components`` dimensions (``"auto"``: the JL dimension for ``eps``)."""

    def __init__(self, n_components: int | str = "auto", *, eps: float = 0.1, density: float | str = "auto",
                 random_state: int | None = 1234):
        self.n_components = n_components
        self.eps = eps
        self.density = density
        self.random_state = random_state

    def fit(self, X, y=None) -> SparseRandomProjection:
        X = _as_2d(X, "SparseRandomProjection.fit X")
        n_samples, n_features = X.shape
        if self.n_components == "auto":
            k = johnson_lindenstrauss_min_dim(n_samples, self.eps)
            if k > n_features:
                raise InputError(f"eps={self.eps} and {n_samples} samples give a JL dimension of {k} > the "
                                 f"{n_features} features; pass n_components=min({k}, {n_features}) explicitly "
                                 "(Höfling et al. cap it at the number of features) or a larger eps")
        else:
            k = int(self.n_components)
            if k < 1:
                raise InputError(f"n_components must be positive or 'auto', got {self.n_components!r}")
        density = 1 / math.sqrt(n_features) if self.density == "auto" else float(self.density)
        if not 0 < density <= 1:
            raise InputError(f"density must be in (0, 1], got {density}")
        rng = np.random.default_rng(self.random_state)
        counts = rng.binomial(n_features, density, size=k)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        indices = np.empty(indptr[-1], dtype=np.int64)
        for row, count in enumerate(counts):  # distinct feature indices per component, as scikit-learn
            indices[indptr[row]:indptr[row + 1]] = np.sort(rng.choice(n_features, size=count, replace=False))
        signs = rng.integers(0, 2, size=indptr[-1]) * 2 - 1
        values = signs * (math.sqrt(1 / density) / math.sqrt(k))
        self.n_components_ = k
        self.n_features_in_ = n_features
        self.density_ = density
        self._csr = (indptr, indices, values)
        self._cache: dict[tuple, Any] = {}
        return self

    @property
    def components_(self):
        """The ``(n_components, n_features)`` projection as a ``scipy.sparse.csr_matrix``."""
        import scipy.sparse

        indptr, indices, values = self._check_fitted()
        return scipy.sparse.csr_matrix((values, indices, indptr), shape=(self.n_components_, self.n_features_in_))

    def _check_fitted(self):
        if not hasattr(self, "_csr"):
            raise InputError("SparseRandomProjection is not fitted; call fit(X_train) first")
        return self._csr

    def transform(self, X):
        X = _as_2d(X, "SparseRandomProjection.transform X")
        self._check_fitted()
        if X.shape[1] != self.n_features_in_:
            raise InputError(f"X has {X.shape[1]} features; the projection was fitted on {self.n_features_in_}")
        X = _float(X)
        if _is_tensor(X):
            import torch

            key = (str(X.device), X.dtype)
            if key not in self._cache:
                indptr, indices, values = self._csr
                with warnings.catch_warnings():  # "sparse CSR support is in beta"
                    warnings.simplefilter("ignore", UserWarning)
                    self._cache[key] = torch.sparse_csr_tensor(
                        torch.from_numpy(indptr), torch.from_numpy(indices), torch.from_numpy(values),
                        (self.n_components_, self.n_features_in_), dtype=X.dtype, device=X.device,
                        check_invariants=False)
            return (self._cache[key] @ X.t()).t()
        W = self.components_.astype(X.dtype)
        return np.asarray((W @ X.T).T)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)


class PCA:
    """Principal components of the training features; ``variance`` in (0, 1] or ``n_components`` (an int)."""

    def __init__(self, variance: float | None = 0.95, *, n_components: int | None = None):
        if (variance is None) == (n_components is None):
            raise InputError("PCA: give exactly one of variance (a fraction) or n_components (an int)")
        if variance is not None and not 0 < variance <= 1:
            raise InputError(f"PCA variance must be in (0, 1], got {variance}")
        self.variance = variance
        self.n_components = n_components

    def fit(self, X, y=None) -> PCA:
        X = _float(_as_2d(X, "PCA.fit X"))
        if X.shape[0] < 2:
            raise InputError("PCA needs at least 2 training samples")
        if _is_tensor(X):
            import torch

            mean = X.mean(0)
            _, s, vt = torch.linalg.svd(X - mean, full_matrices=False)
            explained = s.double() ** 2 / (X.shape[0] - 1)
            ratio = (explained / explained.sum()).cpu().numpy()
        else:
            mean = X.mean(0)
            _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
            explained = s.astype(np.float64) ** 2 / (X.shape[0] - 1)
            ratio = explained / explained.sum()
        if self.n_components is not None:
            k = int(self.n_components)
            if not 1 <= k <= len(ratio):
                raise InputError(f"PCA n_components must be in 1..{len(ratio)}, got {k}")
        else:  # scikit-learn: the fewest components whose cumulative ratio exceeds the fraction
            k = min(int(np.searchsorted(np.cumsum(ratio), self.variance, side="right")) + 1, len(ratio))
        vt = vt[:k]
        # deterministic signs (scikit-learn's svd_flip on V): the largest-magnitude loading of each axis is positive
        if _is_tensor(vt):
            import torch

            pick = vt.abs().argmax(1)
            vt = vt * torch.sign(vt[torch.arange(k, device=vt.device), pick])[:, None]
        else:
            pick = np.abs(vt).argmax(1)
            vt = vt * np.sign(vt[np.arange(k), pick])[:, None]
        self.mean_, self.components_, self.n_components_ = mean, vt, k
        self.explained_variance_ratio_ = ratio[:k]
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        X = _float(_as_2d(X, "PCA.transform X"))
        if not hasattr(self, "components_"):
            raise InputError("PCA is not fitted; call fit(X_train) first")
        if X.shape[1] != self.n_features_in_:
            raise InputError(f"X has {X.shape[1]} features; PCA was fitted on {self.n_features_in_}")
        mean, components = self.mean_, self.components_
        if _is_tensor(X) and not _is_tensor(components):
            import torch

            mean, components = (torch.as_tensor(a, dtype=X.dtype, device=X.device) for a in (mean, components))
        elif not _is_tensor(X) and _is_tensor(components):
            mean, components = (a.detach().cpu().numpy().astype(X.dtype) for a in (mean, components))
        elif _is_tensor(X):
            mean, components = mean.to(X.device, X.dtype), components.to(X.device, X.dtype)
        else:
            mean, components = mean.astype(X.dtype), components.astype(X.dtype)
        return (X - mean) @ components.T

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)
