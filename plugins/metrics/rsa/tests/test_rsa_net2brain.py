"""Cross-check against a peer on real data: Net2Brain's reference RSA results for the 78-image Algonauts-2019 fMRI.

From Net2Brain's own inputs (ResNet18 features, or its stored CLIP-RN50 model RDM) and the 15-subject EVC/IT RDMs,
our code must reproduce its results.csv: per-subject Spearman rho^2, their mean (R2), %R2, the noise ceilings (LNC/UNC:
mean squared leave-one-subject-out lower/upper rho), the two-sided one-sample t-test p-value and the SEM.

Tolerance: our model RDM (z-scored features, 1 - Pearson r, float64) differs from Net2Brain's stored one by at most
~1e-9 (float32 feature arithmetic on their side) and, as asserted below, induces exactly the same ranks of the 3003
dissimilarities; Spearman rho is a function of the ranks only, so the remaining differences are float64 rounding
(~1e-16 absolute on values ~1e-3). We allow a relative 1e-9, far below any difference that would indicate a
different procedure (e.g. not z-scoring changes the RDM by 0.15-0.6 and rho^2 by orders of magnitude more).
"""
import numpy as np
import pytest
import torch

from cortexbench.plugins.metrics.ceilings.subjects import across_subjects
from cortexbench.plugins.metrics.rsa import functional as F
from cortexbench.plugins.metrics.rsa import reference_data as D
from cortexbench.plugins.metrics.rsa.metric import RSA

LAYERS = ("layer3.1.conv2", "layer4.1.bn2")


@pytest.fixture(scope="module")
def case1_rdms(shared_data):
    return {layer: F.rdm(torch.tensor(D.features(layer)), "correlation", zscore=True) for layer in LAYERS}


def test_model_rdms_match_net2brain(case1_rdms):
    for layer, ours in case1_rdms.items():
        theirs = torch.tensor(D.model_rdm("case1", layer))
        assert torch.abs(ours - theirs).max() < 2e-9
        assert torch.equal(F.rankdata(F.upper(ours)), F.rankdata(F.upper(theirs)))
        # without z-scoring the RDM is clearly different: the check can fail
        plain = F.rdm(torch.tensor(D.features(layer)), "correlation")
        assert torch.abs(plain - theirs).max() > 0.1


def _check_rows(rows, model_rdms):
    assert rows
    for row in rows:
        brain = torch.tensor(D.brain_rdms(row["roi"]))
        assert brain.shape == (15, 78, 78)
        rho = F.compare(F.upper(model_rdms[row["layer"]])[None], F.upper(brain), "spearman")[0].numpy()
        r2 = rho ** 2
        lower, upper = F.loso_ceiling(brain, "spearman")
        lnc, unc = float((lower.numpy() ** 2).mean()), float((upper.numpy() ** 2).mean())
        stats = across_subjects(r2)
        np.testing.assert_allclose(r2, row["R2_array"], rtol=1e-9, atol=1e-15)
        assert float(stats.mean) == pytest.approx(row["R2"], rel=1e-9)
        assert lnc == pytest.approx(row["LNC"], rel=1e-9)
        assert unc == pytest.approx(row["UNC"], rel=1e-9)
        assert 100 * float(stats.mean) / lnc == pytest.approx(row["%R2"], rel=1e-9)
        assert float(stats.p) == pytest.approx(row["p"], rel=1e-9)
        assert float(stats.sem) == pytest.approx(row["SEM"], rel=1e-9)


def test_case1_resnet18_results_from_features(case1_rdms):
    _check_rows(D.results("case1"), case1_rdms)


def test_case2_clip_results_from_stored_rdm(shared_data):
    rdm = torch.tensor(D.model_rdm("case2", "visual.layer4"))
    _check_rows(D.results("case2"), {"visual.layer4": rdm})


def test_metric_object_gives_the_same_rhos(shared_data):
    """The registered metric (z-scored correlation RDMs, Spearman) on features vs the subjects' RDMs."""
    import xarray as xr

    features = D.features("layer4.1.bn2")
    source = xr.DataArray(features, dims=("stimulus", "feature"))
    brain = D.brain_rdms("IT")
    # an RDM is not a feature matrix; compare the RDMs through the metric's own RDM comparison
    metric = RSA(zscore=True)
    rho = metric.compare_rdms(metric.rdm(source.values)[None], brain)[0]
    row = next(r for r in D.results("case1") if r["roi"] == "IT" and r["layer"] == "layer4.1.bn2")
    np.testing.assert_allclose(rho ** 2, row["R2_array"], rtol=1e-9)
