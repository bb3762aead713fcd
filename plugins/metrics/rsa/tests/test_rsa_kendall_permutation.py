"""Kendall's tau-a against its definition and scipy, batched comparisons, and the RDM permutation test."""
import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr
from scipy.spatial.distance import pdist, squareform

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.rsa import functional as F
from cortexbench.plugins.metrics.rsa.metric import RSA


def _tau_a_definition(x, y):
    """(concordant - discordant) / (m (m - 1) / 2), pair by pair."""
    m = len(x)
    total = 0
    for i in range(m):
        for j in range(i + 1, m):
            total += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    return total / (m * (m - 1) / 2)


def test_kendall_tau_a_matches_definition_with_ties_and_scipy_without():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=(3, 28)).astype(float)  # many ties: tau-a and tau-b differ
    b = rng.integers(0, 4, size=(2, 28)).astype(float)
    got = F.compare(torch.tensor(a), torch.tensor(b), "kendall").numpy()
    expected = np.array([[_tau_a_definition(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, expected, atol=1e-15)
    tau_b = np.array([[scipy.stats.kendalltau(x, y).statistic for y in b] for x in a])
    assert np.abs(got - tau_b).max() > 1e-3  # the test would notice tau-b
    c, d = rng.normal(size=(4, 45)), rng.normal(size=(3, 45))  # no ties: tau-a == tau-b
    expected = np.array([[scipy.stats.kendalltau(x, y).statistic for y in d] for x in c])
    np.testing.assert_allclose(F.compare(torch.tensor(c), torch.tensor(d), "kendall").numpy(), expected, atol=1e-14)


def test_kendall_blocks_and_paired_form_agree(monkeypatch):
    rng = np.random.default_rng(1)
    a, b = torch.tensor(rng.normal(size=(3, 66)).round(1)), torch.tensor(rng.normal(size=(3, 66)).round(1))
    whole = F.kendall_tau_a(a, b)
    monkeypatch.setattr(F, "KENDALL_BLOCK", 200)  # a handful of rows per block
    np.testing.assert_allclose(F.kendall_tau_a(a, b).numpy(), whole.numpy(), atol=1e-15)
    np.testing.assert_allclose(F.compare_paired(a, b, "kendall").numpy(), whole.diagonal().numpy(), atol=1e-15)


def test_metric_with_kendall_comparison():
    rng = np.random.default_rng(2)
    source = xr.DataArray(rng.normal(size=(2, 9, 5)), dims=("layer", "stimulus", "feature"))
    target = xr.DataArray(rng.normal(size=(9, 4)), dims=("stimulus", "neuroid"))
    out = RSA(comparison="kendall")(source, target)
    assert out.dims == ("layer",)
    expected = _tau_a_definition(pdist(source.values[1], "correlation"), pdist(target.values, "correlation"))
    assert float(out[1]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall"])
def test_permutation_null_equals_comparison_of_permuted_rdms(method):
    rng = np.random.default_rng(3)
    n = 7
    model = np.stack([squareform(rng.random(21)) for _ in range(2)])
    brain = np.stack([squareform(rng.random(21).round(1)) for _ in range(3)])
    observed, null, p = F.permutation_test(torch.tensor(model), torch.tensor(brain), method, n_permutations=5,
                                           random_state=1)
    assert observed.shape == (2, 3) and null.shape == (5, 2, 3) and p.shape == (2, 3)
    fn = {"spearman": lambda x, y: scipy.stats.spearmanr(x, y)[0],
          "pearson": lambda x, y: scipy.stats.pearsonr(x, y)[0], "kendall": _tau_a_definition}[method]
    from cortexbench.plugins.metrics.ceilings.resampling import random_permutations

    perms = random_permutations(n, 5, 1).numpy()
    for k, perm in enumerate(perms):
        for a in range(2):
            for b in range(3):
                permuted = brain[b][np.ix_(perm, perm)]
                expected = fn(squareform(model[a], checks=False), squareform(permuted, checks=False))
                assert float(null[k, a, b]) == pytest.approx(expected, abs=1e-12)


def test_exact_permutation_test_on_a_planted_match():
    """An RDM against itself: only the identity permutation gives rho = 1, so the exact p is 1 / 4! = 1/24."""
    rng = np.random.default_rng(4)
    rdm = squareform(rng.random(6))
    _, null, p = F.permutation_test(torch.tensor(rdm), torch.tensor(rdm), "spearman", exact=True)
    assert null.shape[0] == 24
    assert float(p[0, 0]) == pytest.approx(1 / 24)
    # random permutations estimate the same p (binomial 99.9 % bounds around 1/24, plus the +1 correction)
    _, _, p_mc = F.permutation_test(torch.tensor(rdm), torch.tensor(rdm), "spearman", n_permutations=2000)
    assert 0.030 < float(p_mc[0, 0]) < 0.055


def test_permutation_test_rejects_mismatched_stimuli():
    with pytest.raises(InputError, match="same stimuli"):
        F.permutation_test(torch.rand(5, 5), torch.rand(6, 6))
