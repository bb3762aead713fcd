"""cichy2014.rsa / algonauts2019.rsa: EVC and IT in one assembly, brain-to-brain, and APA on real fMRI RDMs.

Values are re-derived here with scipy from the data files and the halves the assemblies store; a reduced layer list
and fewer resamples keep the CPU test short (the defaults are every layer, 10 splits and 1000 resamples).
"""
import gzip
import json

import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import squareform

from cortexbench import alignment_patterns as apa
from cortexbench.registry import Registry, variant_of
from cortexbench.scorer import score, score_brain_to_brain

LAYERS = ["features.4", "features.11"]
OPTIONS = {"layers": LAYERS, "n_bootstrap": 50, "n_splits": 3}


def brain(shared_data, image_set: str, region: str) -> np.ndarray:
    path = shared_data / "cichy92_algonauts2019_78" / image_set / f"{image_set}_fmri_{region}_RDMs.gzip"
    with gzip.open(path, "rt") as handle:
        payload = json.load(handle)
    return np.asarray(payload["data"], dtype=np.float64).reshape(payload["shape"])


def condensed(rdm: np.ndarray, index: np.ndarray) -> np.ndarray:
    return squareform(rdm[np.ix_(index, index)], checks=False)


@pytest.fixture(scope="module")
def stored(shared_data, tmp_path_factory):
    registry = Registry(tmp_path_factory.mktemp("registry"))
    kw = dict(registry=registry, device="cpu", progress=False, benchmark_options=OPTIONS)
    models = {m: score(m, "cichy2014.rsa", **kw).assembly for m in ("mobilenet_v2", "mobilenet_v2.untrained-seed0")}
    brain_ds = score_brain_to_brain("cichy2014.rsa", registry=registry, device="cpu", progress=False,
                                    benchmark_options=OPTIONS).assembly
    return registry, models, brain_ds


def test_model_assembly_has_both_regions_and_apa_splits(stored, shared_data):
    _, models, _ = stored
    ds = models["mobilenet_v2"]
    assert ds["raw"].dims == ("layer", "region", "subject", "split")
    assert list(ds["region"].values) == ["EVC", "IT"] and list(ds["split"].values) == ["train", "test", "all"]
    assert float(ds["score"]) == pytest.approx(float(ds["region_score"].mean()))
    # region score = mean held-out r / mean held-out ceiling, per region
    for region in ("EVC", "IT"):
        expected = ds["fold_raw"].sel(region=region).mean() / ds["fold_ceiling"].sel(region=region).mean()
        assert float(ds["region_score"].sel(region=region)) == pytest.approx(float(expected))
    # the test split is the second half of the first halving; one entry against scipy
    from cortexbench.extraction import extract_all
    from cortexbench.plugin_manager import get_plugin_manager
    from cortexbench.plugins.benchmarks.classic_rsa import cichy_algonauts

    test = np.flatnonzero(ds["halves"].values[0] == 1)
    features = extract_all(get_plugin_manager().create_model("mobilenet_v2"), cichy_algonauts.stimuli("92images"),
                           ["features.11"], pooling="flatten")["features.11"].astype(np.float64)
    model_vec = condensed(1 - np.corrcoef(features), test)
    evc = brain(shared_data, "92images", "EVC")
    expected = [scipy.stats.spearmanr(model_vec, condensed(s, test))[0] for s in evc]
    np.testing.assert_allclose(ds["raw"].sel(layer="features.11", region="EVC", split="test").values, expected,
                               atol=1e-6)


def test_brain_to_brain_pairs_and_loso_match_scipy(stored, shared_data):
    _, models, b2b = stored
    halves = b2b["halves"].values
    np.testing.assert_array_equal(halves, models["mobilenet_v2"]["halves"].values[0])  # the same halves as models
    evc, it = brain(shared_data, "92images", "EVC"), brain(shared_data, "92images", "IT")
    train = np.flatnonzero(halves == 0)
    pair = b2b["raw"].sel(source_subject="subj02", source_region="EVC", region="IT", subject="subj05", split="train")
    assert float(pair) == pytest.approx(scipy.stats.spearmanr(condensed(evc[1], train), condensed(it[4], train))[0],
                                        abs=1e-10)
    assert np.isnan(b2b["raw"].sel(source_subject="subj03", subject="subj03")).all()
    everyone = np.arange(92)
    others = np.delete(it, 6, 0).mean(0)
    loso = b2b["loso"].sel(source_region="IT", region="IT", subject="subj07", split="all")
    assert float(loso) == pytest.approx(scipy.stats.spearmanr(condensed(others, everyone),
                                                              condensed(it[6], everyone))[0], abs=1e-10)
    # the same-region LOSO value is the single-region benchmarks' per-subject ceiling (SOURCE.md: IT lower 0.449)
    assert float(b2b["loso"].sel(source_region="IT", region="IT", split="all").mean()) == pytest.approx(0.449,
                                                                                                      abs=5e-4)


def test_apa_runs_on_the_stored_two_region_scores(stored):
    registry, _, _ = stored
    models, brain_ds = apa.load_from_registry(registry, "cichy2014.rsa", variant=variant_of({}, OPTIONS))
    assert set(models) == {"mobilenet_v2", "mobilenet_v2.untrained-seed0"}
    result = apa.analyze(models, brain_ds, outcome_kind="score_norm_lower", n_bootstrap=100)
    assert list(result["region"].values) == ["EVC", "IT"]
    assert set(result["best_layer"].values.ravel()) <= set(LAYERS)
    assert np.isfinite(result["score_mean"].values).all() and np.isfinite(result["aps_mean"].values).all()
    # the brain's own pattern: each region is predicted best by the same region of another subject
    pattern = result["brain_pattern"].values
    assert pattern[0, 0] > pattern[1, 0] and pattern[1, 1] > pattern[0, 1]


def test_algonauts_two_region_benchmark_reports_its_ceiling_unceiled(shared_data):
    ds = score("mobilenet_v2", "algonauts2019.rsa", store=False, device="cpu", progress=False,
               benchmark_options=OPTIONS).assembly
    assert "reported only" in ds.attrs["ceiling_method"]
    np.testing.assert_allclose(ds["region_score"].values, ds["fold_raw"].mean(("halving", "direction")).values)
    assert ds.sizes["region"] == 2 and ds.sizes["subject"] == 15
