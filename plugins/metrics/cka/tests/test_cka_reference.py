"""CKA against Kornblith et al.'s published demo values, Song et al.'s unbiased HSIC formula, a per-pair
re-implementation of Shen et al.'s procedure, and the invariances CKA is known to have."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import ortho_group

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.cka import functional as F


@pytest.fixture(scope="module")
def demo():
    """The inputs of Kornblith et al.'s demo notebook (google-research/representation_similarity)."""
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = np.random.randn(100, 10) + X
    return X, Y


def test_kornblith_demo_values(demo):
    X, Y = demo
    # the values printed in the demo notebook, to its 5 decimals
    assert F.linear_cka(X, Y) == pytest.approx(0.55761, abs=5e-6)
    assert F.rbf_cka(X, Y, threshold=0.5) == pytest.approx(0.65483, abs=5e-6)
    assert F.linear_cka(X, Y, debiased=True) == pytest.approx(0.51346, abs=5e-6)
    # the grid gives the same numbers
    grid = F.cka_grid([X], [Y], kernel="linear", dtype=torch.float64)
    assert float(grid[0, 0, 0]) == pytest.approx(0.55761, abs=5e-6)
    grid = F.cka_grid([X], [Y], kernel="rbf", thresholds=[0.5], dtype=torch.float64)
    assert float(grid[0, 0, 0]) == pytest.approx(0.65483, abs=5e-6)
    grid = F.cka_grid([X], [Y], kernel="linear", hsic="unbiased", dtype=torch.float64)
    assert float(grid[0, 0, 0]) == pytest.approx(0.51346, abs=5e-6)


def _song_unbiased_hsic(K, L):
    """Equation 5 of Song et al. (2012), JMLR 13:1393, written from the paper."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    one = np.ones(n)
    value = (np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
             - 2.0 / (n - 2) * one @ Kt @ Lt @ one)
    return value / (n * (n - 3))


def test_debiased_cka_equals_song_unbiased_hsic_ratio():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 6)), rng.normal(size=(30, 4))
    Y[:, 0] += X[:, 0]
    K, L = X @ X.T, Y @ Y.T
    expected = _song_unbiased_hsic(K, L) / np.sqrt(_song_unbiased_hsic(K, K) * _song_unbiased_hsic(L, L))
    assert F.linear_cka(X, Y, debiased=True) == pytest.approx(expected, abs=1e-12)
    # also for RBF kernels with a fixed sigma
    Kr, Lr = np.exp(-cdist(X, X, "sqeuclidean") / 8.0), np.exp(-cdist(Y, Y, "sqeuclidean") / 8.0)
    expected = _song_unbiased_hsic(Kr, Lr) / np.sqrt(_song_unbiased_hsic(Kr, Kr) * _song_unbiased_hsic(Lr, Lr))
    assert F.rbf_cka(X, Y, sigma=2.0, debiased=True) == pytest.approx(expected, abs=1e-12)


def test_invariances_on_fresh_random_inputs():
    rng = np.random.default_rng(12345)
    X = rng.normal(size=(40, 15))
    Y = X[:, :8] @ rng.normal(size=(8, 12)) + rng.normal(size=(40, 12))
    Q = ortho_group.rvs(15, random_state=7)
    base_lin, base_rbf = F.linear_cka(X, Y), F.rbf_cka(X, Y, threshold=0.8)
    base_deb = F.linear_cka(X, Y, debiased=True)
    # orthogonal transform and isotropic scaling (linear: any scale; RBF via median: any scale)
    for transformed in (X @ Q, 3.7 * X, 0.01 * X @ Q):
        assert F.linear_cka(transformed, Y) == pytest.approx(base_lin, abs=1e-12)
        assert F.linear_cka(transformed, Y, debiased=True) == pytest.approx(base_deb, abs=1e-12)
        assert F.rbf_cka(transformed, Y, threshold=0.8) == pytest.approx(base_rbf, abs=1e-12)
    # a fixed-sigma RBF kernel is orthogonally invariant but not scale invariant
    assert F.rbf_cka(X @ Q, Y, sigma=4.0) == pytest.approx(F.rbf_cka(X, Y, sigma=4.0), abs=1e-12)
    assert abs(F.rbf_cka(3.7 * X, Y, sigma=4.0) - F.rbf_cka(X, Y, sigma=4.0)) > 1e-3
    # not invariant to a general invertible linear map: the test can fail
    A = rng.normal(size=(15, 15))
    assert abs(F.linear_cka(X @ A, Y) - base_lin) > 1e-3
    # symmetric, and 1 with itself
    assert F.linear_cka(Y, X) == pytest.approx(base_lin, abs=1e-12)
    assert F.rbf_cka(X, X, sigma=3.0) == pytest.approx(1.0, abs=1e-12)


def _shen_reference(features_a, features_b, sigma, unbiased=False):
    """Shen et al.'s per-pair computation (FloyedShen/BrainAlign alignment/metrics.py), re-written in numpy."""
    def prep(x):
        return (x - x.mean(0)) / (x.std(0, ddof=1) + 1e-8)

    a, b = prep(features_a), prep(features_b)
    K = np.exp(-cdist(a, a, "sqeuclidean") / (2 * sigma ** 2))
    L = np.exp(-cdist(b, b, "sqeuclidean") / (2 * sigma ** 2))
    if unbiased:
        hsic = _song_unbiased_hsic
    else:
        n = K.shape[0]
        H = np.eye(n) - 1.0 / n

        def hsic(k, l):
            return np.trace(k @ H @ l @ H)
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.fixture(scope="module")
def grid_inputs():
    rng = np.random.default_rng(3)
    n = 53
    shared = rng.normal(size=(n, 3))
    layers = [np.hstack([shared * w, rng.normal(size=(n, d))]) for w, d in ((0.3, 20), (2.0, 7), (1.0, 40))]
    regions = [shared @ rng.normal(size=(3, d)) + rng.normal(size=(n, d)) * s for d, s in ((5, 1.0), (30, 3.0))]
    regions.append(np.hstack([regions[0], np.zeros((n, 2))]))  # constant columns are allowed (z-scored to 0)
    return layers, regions


@pytest.mark.parametrize("hsic", ["biased", "unbiased"])
@pytest.mark.parametrize("tile", [512, 16])  # 16 forces 4 x 4 tiles with padding (n = 53)
def test_grid_matches_per_pair_shen_procedure(grid_inputs, hsic, tile, monkeypatch):
    monkeypatch.setattr(F, "TILE", tile)
    layers, regions = grid_inputs
    sigmas = [3.0, 6.0, 12.0]
    # layers given as a generator of torch tensors: consumed once, one at a time
    got = F.rbf_cka_grid((torch.tensor(x) for x in layers), regions, sigmas, hsic=hsic, dtype=torch.float64)
    assert got.shape == (3, 3, 3) and got.dtype == torch.float64
    expected = np.array([[[_shen_reference(x, y, s, hsic == "unbiased") for s in sigmas] for y in regions]
                         for x in layers])
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    # float32 kernels (the default) and chunking of one kernel at a time give the same values
    got32 = F.rbf_cka_grid(layers, regions, sigmas, hsic=hsic, chunk_size=1)
    np.testing.assert_allclose(got32.numpy(), expected, atol=2e-6)


@pytest.mark.parametrize("n", [53, 48])  # with TILE = 16: 6 x 6 tiles with 1 padded row, and 6 x 6 without padding
def test_tiled_layout_equals_a_single_tile(grid_inputs, n, monkeypatch):
    layers, regions = ([x[:n] for x in part] for part in grid_inputs)
    whole = F.rbf_cka_grid(layers, regions, [5.0], dtype=torch.float64, hsic="unbiased")
    monkeypatch.setattr(F, "TILE", 16)
    from cortexbench.plugins.metrics.cka.functional import _Tiles

    tiles = _Tiles(n, torch.device("cpu"))
    assert tiles.nb == 6 and (tiles.padded > n) == (n == 53)
    tiled = F.rbf_cka_grid(layers, regions, [5.0], dtype=torch.float64, hsic="unbiased")
    np.testing.assert_allclose(tiled.numpy(), whole.numpy(), atol=1e-13)


def test_bfloat16_kernels_stay_within_their_error_budget(grid_inputs):
    layers, regions = grid_inputs
    exact = F.rbf_cka_grid(layers, regions, [4.0, 10.0], dtype=torch.float64).numpy()
    low = F.rbf_cka_grid(layers, regions, [4.0, 10.0], dtype=torch.bfloat16).numpy()
    # bf16 keeps 8 significant bits per kernel entry; the rounding errors average out over n^2 entries
    assert np.abs(low - exact).max() < 2e-3
    assert np.abs(low - exact).max() > 0  # it really ran in reduced precision


def test_linear_and_threshold_grids_match_single_pairs(grid_inputs):
    layers, regions = grid_inputs
    lin = F.cka_grid(layers, regions, kernel="linear", dtype=torch.float64)
    thr = F.cka_grid(layers, regions, kernel="rbf", thresholds=[0.5, 1.0], dtype=torch.float64, hsic="unbiased")
    for i, x in enumerate(layers):
        for j, y in enumerate(regions):
            assert float(lin[i, j, 0]) == pytest.approx(F.linear_cka(x, y), abs=1e-12)
            for k, t in enumerate([0.5, 1.0]):
                assert float(thr[i, j, k]) == pytest.approx(F.rbf_cka(x, y, threshold=t, debiased=True), abs=1e-12)


def test_median_matches_numpy_including_the_diagonal():
    rng = np.random.default_rng(4)
    for n in (5, 6):  # odd and even n^2
        x = rng.normal(size=(n, 3))
        d = cdist(x, x, "sqeuclidean")
        assert float(F.median_squared_distance(torch.tensor(d))) == pytest.approx(np.median(d), abs=1e-12)


def test_clear_errors_for_degenerate_input(grid_inputs):
    layers, regions = grid_inputs
    with pytest.raises(InputError, match="NaN"):
        F.rbf_cka_grid([np.full((53, 3), np.nan)], regions, [4.0])
    with pytest.raises(InputError, match="source 1.*constant"):
        F.rbf_cka_grid([layers[0], np.ones((53, 4))], regions, [4.0])
    with pytest.raises(InputError, match="constant"):
        F.linear_cka(np.ones((10, 3)), layers[0][:10])
    with pytest.raises(InputError, match="at least 4 stimuli"):
        F.linear_cka(layers[0][:3], regions[0][:3], debiased=True)
    with pytest.raises(InputError, match="at least 4 stimuli"):
        F.rbf_cka_grid([layers[0][:3]], [regions[0][:3]], [4.0], hsic="unbiased")
    with pytest.raises(InputError, match="same stimuli"):
        F.rbf_cka_grid([layers[0][:50]], regions, [4.0])
    with pytest.raises(InputError, match="positive"):
        F.rbf_cka_grid(layers, regions, [0.0])
    with pytest.raises(InputError, match="either sigma or threshold"):
        F.rbf_cka(layers[0], regions[0], sigma=1.0, threshold=1.0)
