"""RSA core against scipy/numpy computed independently, and the masked bootstrap against a per-sample loop."""
import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr
from scipy.spatial.distance import pdist, squareform

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.rsa import functional as F
from cortexbench.plugins.metrics.rsa.metric import RSA


def test_rdm_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 30))
    got = F.rdm(torch.tensor(x), "correlation").numpy()
    np.testing.assert_allclose(got, 1 - np.corrcoef(x), atol=1e-12)
    np.testing.assert_allclose(F.rdm(torch.tensor(x), "euclidean").numpy(), squareform(pdist(x)), atol=1e-9)


def test_upper_is_squareform_order():
    rdm = squareform(np.arange(1, 16, dtype=float))
    np.testing.assert_array_equal(F.upper(torch.tensor(rdm)).numpy(), np.arange(1, 16))


def test_rankdata_averages_ties_like_scipy():
    x = torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0, 3.0], [0.0, 0.0, 0.0, 0.0, 1.0, -1.0]])
    expected = np.stack([scipy.stats.rankdata(row) for row in x.numpy()])
    np.testing.assert_array_equal(F.rankdata(x).numpy(), expected)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_compare_all_pairs_matches_scipy(method):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 45)).round(1)  # rounding plants ties
    b = rng.normal(size=(4, 45)).round(1)
    fn = scipy.stats.spearmanr if method == "spearman" else scipy.stats.pearsonr
    expected = np.array([[fn(x, y)[0] for y in b] for x in a])
    np.testing.assert_allclose(F.compare(torch.tensor(a), torch.tensor(b), method).numpy(), expected, atol=1e-12)


def test_loso_ceiling_matches_manual_loop():
    rng = np.random.default_rng(2)
    true = squareform(rng.random(45))
    subjects = np.stack([true + squareform(rng.random(45)) * 0.5 for _ in range(5)])
    lower, upper = F.loso_ceiling(torch.tensor(subjects))
    vec = np.stack([squareform(s, checks=False) for s in subjects])
    manual_lower = [scipy.stats.spearmanr(vec[s], np.delete(vec, s, 0).mean(0))[0] for s in range(5)]
    manual_upper = [scipy.stats.spearmanr(vec[s], vec.mean(0))[0] for s in range(5)]
    np.testing.assert_allclose(lower.numpy(), manual_lower, atol=1e-12)
    np.testing.assert_allclose(upper.numpy(), manual_upper, atol=1e-12)
    assert (lower.numpy() < upper.numpy()).all()  # the upper bound includes the subject itself


def test_masked_bootstrap_equals_per_sample_computation():
    rng = np.random.default_rng(3)
    n = 15
    model = squareform(rng.random(n * (n - 1) // 2))
    subjects = np.stack([squareform(rng.random(n * (n - 1) // 2)) for _ in range(3)])
    samples = F.bootstrap_samples(n, 20, seed=4)
    got = F.bootstrap_rsa(torch.tensor(model), torch.tensor(subjects), samples, ceiled=True, chunk=7).numpy()
    for b, sample in enumerate(samples.numpy()):
        i, j = np.triu_indices(n, 1)
        keep = sample[i] != sample[j]
        si, sj = sample[i][keep], sample[j][keep]
        m, s = model[si, sj], subjects[:, si, sj]
        raw = np.mean([scipy.stats.spearmanr(m, s[k])[0] for k in range(3)])
        ceiling = np.mean([scipy.stats.spearmanr(s[k], np.delete(s, k, 0).mean(0))[0] for k in range(3)])
        assert got[b] == pytest.approx(raw / ceiling, abs=1e-10)


def test_metric_object_batches_leading_dims_and_checks_order():
    rng = np.random.default_rng(5)
    ids = [f"s{i}" for i in range(10)]
    source = xr.DataArray(rng.normal(size=(2, 10, 8)), dims=("layer", "stimulus", "feature"),
                          coords={"layer": ["a", "b"], "stimulus": ids})
    target = xr.DataArray(rng.normal(size=(3, 10, 6)), dims=("subject", "stimulus", "neuroid"),
                          coords={"subject": [1, 2, 3], "stimulus": ids})
    out = RSA()(source, target)
    assert out.dims == ("layer", "subject") and out.shape == (2, 3)
    expected = scipy.stats.spearmanr(squareform(1 - np.corrcoef(source.values[1]), checks=False),
                                     squareform(1 - np.corrcoef(target.values[2]), checks=False))[0]
    assert float(out.sel(layer="b", subject=3)) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(InputError, match="permutation"):
        RSA()(source, target.assign_coords(stimulus=ids[::-1]))


def test_clear_errors_for_degenerate_input():
    constant = torch.ones(5, 4)
    with pytest.raises(InputError, match="constant"):
        F.rdm(constant, "correlation")
    with pytest.raises(InputError, match="NaN"):
        F.rdm(torch.tensor([[np.nan, 1.0], [1.0, 2.0]]), "correlation")
    with pytest.raises(InputError, match="same stimuli"):
        F.compare(torch.ones(1, 10), torch.ones(1, 6))


def test_weighted_ranks_equal_ranks_of_the_expanded_multiset():
    """Both paths (tied and untied values) against scipy on explicitly repeated entries."""
    rng = np.random.default_rng(6)
    untied = rng.normal(size=(2, 12))
    tied = rng.integers(0, 4, size=(2, 12)).astype(float)
    weights = rng.integers(0, 4, size=(3, 12)).astype(float)
    for values in (untied, tied):
        got = F.weighted_ranks(torch.tensor(values), torch.tensor(weights)).numpy()
        for k in range(2):
            for b in range(3):
                keep = weights[b] > 0
                expanded = np.repeat(values[k], weights[b].astype(int))
                ranks = scipy.stats.rankdata(expanded)
                first = np.concatenate([[0], np.cumsum(weights[b].astype(int))[:-1]])
                np.testing.assert_allclose(got[k, b][keep], ranks[first[keep]], atol=1e-12)
