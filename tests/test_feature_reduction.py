"""Sparse random projection and PCA against scikit-learn and the Johnson-Lindenstrauss guarantee."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from cortexbench.errors import InputError
from cortexbench.reduction import PCA, SparseRandomProjection, johnson_lindenstrauss_min_dim


@pytest.mark.parametrize("n, eps", [(998, 0.1), (100, 0.3), (10_000, 0.05)])
def test_jl_dimension_is_scikit_learns(n, eps):
    from sklearn.random_projection import johnson_lindenstrauss_min_dim as reference

    assert johnson_lindenstrauss_min_dim(n, eps) == int(reference(n, eps=eps))


def test_projection_matrix_has_the_very_sparse_distribution():
    d, k = 4096, 800
    srp = SparseRandomProjection(n_components=k, random_state=3).fit(np.zeros((5, d), np.float32))
    W = srp.components_
    density = 1 / math.sqrt(d)
    assert W.shape == (k, d)
    nnz = W.getnnz(axis=1)
    # per component a Binomial(d, 1/sqrt(d)) count of non-zeros: mean 64, sd about 7.9
    assert abs(nnz.mean() - d * density) < 1.0 and 6 < nnz.std() < 10
    values = np.unique(np.round(W.data, 12))
    np.testing.assert_allclose(values, [-math.sqrt(1 / density / k), math.sqrt(1 / density / k)])
    assert abs((W.data > 0).mean() - 0.5) < 0.01
    assert all(len(set(W[i].indices)) == nnz[i] for i in range(0, k, 97))  # distinct columns per row


def test_distances_are_preserved_as_jl_promises():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(60, 20_000)).astype(np.float32)
    test = rng.normal(size=(20, 20_000)).astype(np.float32)
    eps = 0.3
    srp = SparseRandomProjection(eps=eps, random_state=1).fit(train)
    assert srp.n_components_ == johnson_lindenstrauss_min_dim(60, eps)
    both = np.concatenate([train, test])
    ratio = pdist(srp.transform(both)) ** 2 / pdist(both) ** 2
    assert ratio.min() > 1 - eps and ratio.max() < 1 + eps
    assert abs(np.median(ratio) - 1) < 0.03


def test_numpy_and_torch_give_the_same_projection():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3000)).astype(np.float32)
    srp = SparseRandomProjection(n_components=200, random_state=1234).fit(X)
    from_numpy = srp.transform(X)
    from_torch = srp.transform(torch.from_numpy(X))
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, rtol=1e-5, atol=1e-5)
    again = SparseRandomProjection(n_components=200, random_state=1234).fit(torch.from_numpy(X))
    np.testing.assert_allclose(again.transform(X), from_numpy, rtol=1e-6)  # the seed alone fixes the matrix
    other = SparseRandomProjection(n_components=200, random_state=7).fit(X)
    assert not np.allclose(other.transform(X), from_numpy)


def test_projection_errors():
    X = np.zeros((1000, 50), np.float32)
    with pytest.raises(InputError, match="n_components=min"):
        SparseRandomProjection(eps=0.1).fit(X)  # JL dimension 5920 > 50 features
    srp = SparseRandomProjection(n_components=10).fit(X)
    with pytest.raises(InputError, match="fitted on 50"):
        srp.transform(np.zeros((2, 49)))
    with pytest.raises(InputError, match="not fitted"):
        SparseRandomProjection().transform(X)


def test_pca_matches_scikit_learn():
    from sklearn.decomposition import PCA as Reference

    rng = np.random.default_rng(2)
    latent = rng.normal(size=(80, 6)) * np.array([10, 8, 6, 4, 2, 1])
    train = latent @ rng.normal(size=(6, 40)) + 0.05 * rng.normal(size=(80, 40))
    test = rng.normal(size=(10, 6)) @ rng.normal(size=(6, 40))
    ours = PCA(variance=0.95).fit(train)
    reference = Reference(n_components=0.95, svd_solver="full").fit(train)
    assert ours.n_components_ == reference.n_components_
    np.testing.assert_allclose(ours.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=1e-8)
    a, b = ours.transform(test), reference.transform(test)
    np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-6, atol=1e-8)  # axes agree up to sign
    fixed = PCA(variance=None, n_components=3).fit(train)
    assert fixed.transform(train).shape == (80, 3)


def test_pca_on_torch_matches_numpy():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 30)) @ np.diag(np.linspace(5, 0.1, 30))
    on_numpy = PCA(0.9).fit(X)
    on_torch = PCA(0.9).fit(torch.from_numpy(X))
    assert on_numpy.n_components_ == on_torch.n_components_
    out = on_torch.transform(torch.from_numpy(X))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), on_numpy.transform(X), atol=1e-8)
    np.testing.assert_allclose(on_numpy.transform(torch.from_numpy(X)).numpy(), on_numpy.transform(X), atol=1e-8)
    with pytest.raises(InputError):
        PCA(variance=1.5)
