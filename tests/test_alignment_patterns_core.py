"""cortexbench.alignment_patterns on synthetic assemblies with planted patterns (any benchmark, not only BMD)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cortexbench import alignment_patterns as apa
from cortexbench import assembly
from cortexbench.errors import InputError

REGIONS = ["A", "B", "C", "D", "E"]
SUBJECTS = [f"s{i}" for i in range(6)]


def _brain(seed=0, noise=0.05):
    """Pairwise scores whose pattern for source region r is a fixed profile P[r] (+ noise); 3 partners each."""
    rng = np.random.default_rng(seed)
    profile = rng.uniform(0.1, 1.0, size=(len(REGIONS), len(REGIONS))) + np.eye(len(REGIONS))  # same region best
    raw = np.full((6, 5, 5, 6, 2), np.nan)
    for t in range(6):
        for p in [(t + k) % 6 for k in (1, 2, 3)]:
            raw[p, :, :, t, :] = profile[:, :, None] + noise * rng.normal(size=(5, 5, 2))
    dims = ("source_subject", "source_region", "region", "subject", "split")
    coords = {"source_subject": SUBJECTS, "source_region": REGIONS, "region": REGIONS, "subject": SUBJECTS,
              "split": ["train", "test"]}
    brain = apa.brain_to_brain_assembly(xr.DataArray(raw, dims=dims, coords=coords), None,
                                        {"benchmark": "synthetic", "benchmark_version": "1", "metric": "m",
                                         "metric_version": "1"}, n_bootstrap=20)
    return brain, profile


def _model(name, values, extra_dims=None):
    dims = ("layer", "region", "subject", "split") + tuple(extra_dims or ())
    raw = xr.DataArray(values, dims=dims, coords={"layer": [f"l{i}" for i in range(values.shape[0])],
                                                  "region": REGIONS, "subject": SUBJECTS, "split": ["train", "test"]})
    attrs = {"model": name, "benchmark": "synthetic", "benchmark_version": "1", "metric": "m", "metric_version": "1",
             "ceiling_method": "none", "error_method": "none"}
    return assembly.make(score=0.0, score_error=0.0, ceiling=float("nan"), raw=raw, attrs=attrs)


def test_a_model_with_the_brain_pattern_matches_it_and_a_flat_one_does_not():
    brain, profile = _brain()
    lower = np.array([profile[r, r] for r in range(5)])
    rng = np.random.default_rng(1)
    # layer l reproduces the brain pattern of region l (its own target boosted), so it is the best layer for l
    good = np.stack([profile[layer][:, None, None] * (0.5 + 0.5 * (np.arange(5) == layer))[:, None, None]
                     * np.ones((5, 6, 2)) for layer in range(5)])
    shuffled = good[:, rng.permutation(5)]
    result = apa.analyze({"good": _model("good", good), "shuffled": _model("shuffled", shuffled)}, brain,
                         outcome_kind="score", n_bootstrap=50)
    assert (result["n_subjects"] == 6).all()
    for r, region in enumerate(REGIONS):
        assert str(result["best_layer"].sel(model="good", region=region).values) == f"l{r}"
    aps_good = result["aps_mean"].sel(model="good").values
    aps_shuffled = result["aps_mean"].sel(model="shuffled").values
    assert (aps_good > aps_shuffled).mean() >= 0.8
    # the lower ceiling is the same-region profile (noise averages out over partners)
    np.testing.assert_allclose(result["lower_ceiling"].sel(split="test").mean("subject").values, lower, atol=0.05)
    assert (result["brain_aps_mean"].values > 0.95).all()


def test_aps_is_invariant_to_rescaling_a_subjects_scores():
    brain, _ = _brain(seed=2)
    values = np.random.default_rng(3).uniform(size=(3, 5, 6, 2))
    scaled = values * np.linspace(0.5, 2.0, 6)[None, None, :, None]
    a = apa.analyze({"m": _model("m", values)}, brain, outcome_kind="score", n_bootstrap=10)
    b = apa.analyze({"m": _model("m", scaled)}, brain, outcome_kind="score", n_bootstrap=10)
    np.testing.assert_allclose(a["aps"].values, b["aps"].values, atol=1e-12)


def _brain_with_sigma(sigmas=(0.5, 1.0, 2.0)):
    """A brain-to-brain assembly whose pairwise scores differ per sigma (sigma k: the base scores to the power k+1)."""
    base, _ = _brain()
    raw = xr.concat([base["raw"] ** (k + 1) for k in range(len(sigmas))], dim="sigma").assign_coords(sigma=list(sigmas))
    attrs = {"benchmark": "synthetic", "benchmark_version": "1", "metric": "m", "metric_version": "1"}
    full = apa.brain_to_brain_assembly(raw, None, attrs, n_bootstrap=5, select={"sigma": sigmas[1]})
    slices = {s: apa.brain_to_brain_assembly(raw.sel(sigma=s, drop=True), None, attrs, n_bootstrap=5) for s in sigmas}
    return full, slices


def test_extra_dimensions_must_be_selected_on_both_sides_and_regions_must_match():
    brain, _ = _brain()
    values = np.random.default_rng(0).uniform(size=(2, 5, 6, 2, 3))
    model = _model("cka", values, extra_dims=("sigma",)).assign_coords(sigma=[0.5, 1.0, 2.0])
    with pytest.raises(InputError, match="sigma"):
        apa.analyze({"cka": model}, brain, n_bootstrap=5)
    # the brain assembly lacks sigma: selecting sigma must not compare the model at 1.0 with the brain at another value
    with pytest.raises(InputError, match="(?s)sigma=1.0.*no dimension 'sigma'.*cortexbench ceiling synthetic"):
        apa.analyze({"cka": model}, brain, n_bootstrap=5, select={"sigma": 1.0})
    with pytest.raises(InputError, match="no dimension 'depth'"):
        apa.analyze({"cka": model}, _brain_with_sigma()[0], n_bootstrap=5, select={"sigma": 1.0, "depth": 3})
    full, slices = _brain_with_sigma()
    assert set(full["raw"].dims) == {"source_subject", "source_region", "region", "subject", "split", "sigma"}
    assert float(full["score"]) == pytest.approx(float(slices[1.0]["score"]))      # the headline is at sigma 1.0
    xr.testing.assert_allclose(full["lower_ceiling"].sel(sigma=2.0, drop=True), slices[2.0]["lower_ceiling"])
    for sigma in (0.5, 2.0):   # both sides at the selected sigma: the same as analysing the two slices
        result = apa.analyze({"cka": model}, full, n_bootstrap=5, select={"sigma": sigma})
        expected = apa.analyze({"cka": model.sel(sigma=sigma, drop=True)}, slices[sigma], n_bootstrap=5)
        np.testing.assert_allclose(result["lower_ceiling"].values, expected["lower_ceiling"].values)
        np.testing.assert_allclose(result["score"].values, expected["score"].values)
        np.testing.assert_allclose(result["aps"].values, expected["aps"].values)
    other = apa.analyze({"cka": model.sel(sigma=2.0, drop=True)}, slices[0.5], n_bootstrap=5)
    assert not np.allclose(other["score"].values, expected["score"].values)   # the brain's sigma matters
    partial = _model("partial", values[..., 0]).sel(region=REGIONS[:3])
    with pytest.raises(InputError, match="target region"):
        apa.analyze({"partial": partial}, brain, n_bootstrap=5)
    with pytest.raises(InputError, match="brain-to-brain"):
        apa.analyze({"m": partial}, _model("not-brain", values[..., 0]), n_bootstrap=5)


def test_split_less_assemblies_are_treated_as_test_only():
    brain, _ = _brain()
    values = np.random.default_rng(4).uniform(size=(3, 5, 6, 2))
    model = _model("m", values)
    test_only = model.assign(raw=model["raw"].sel(split="test", drop=True))
    result = apa.analyze({"m": test_only}, brain, outcome_kind="score", n_bootstrap=5)
    best = values[:, :, :, 1].mean(-1).argmax(0)
    assert [str(v) for v in result["best_layer"].sel(model="m").values] == [f"l{b}" for b in best]


def test_models_with_fewer_than_two_subjects_are_listed_but_not_tested():
    brain, profile = _brain()
    rng = np.random.default_rng(5)
    good = np.stack([profile[layer][:, None, None] * np.ones((5, 6, 2)) for layer in range(5)])
    noisy = good + 0.05 * rng.normal(size=good.shape)
    solo = _model("solo", 10 * good).isel(subject=[0])                       # far better, but one subject
    models = {"good": _model("good", good), "noisy": _model("noisy", noisy), "solo": solo}
    result = apa.analyze(models, brain, outcome_kind="score", n_bootstrap=50)
    assert (result["n_subjects"].sel(model="solo") == 1).all() and (result["n_subjects"].sel(model="good") == 6).all()
    assert not result["eligible"].sel(model="solo").any() and result["eligible"].sel(model="good").all()
    assert (result["score_mean"].sel(model="solo") > result["score_mean"].sel(model="good")).all()   # it is listed
    for key in ("is_best_score", "is_best_aps", "equivalent_score", "equivalent_aps", "equivalent_both"):
        assert not result[key].sel(model="solo").any(), key
    # without the solo model the tests come out the same: it set no threshold
    without = apa.analyze({k: v for k, v in models.items() if k != "solo"}, brain, outcome_kind="score", n_bootstrap=50)
    for key in ("is_best_score", "equivalent_score", "equivalent_aps"):
        np.testing.assert_array_equal(result[key].sel(model=["good", "noisy"]).values, without[key].values)
    assert result["is_best_score"].sum("model").values.tolist() == [1] * 5
    rows = {(r["model"], r["region"]): r for r in apa.summary_rows(result)}
    assert rows[("solo", "A")]["n_subjects"] == 1 and rows[("solo", "A")]["eligible"] is False
    assert apa.n_label(result, "solo") == "n=1, not tested" and apa.n_label(result, "good") == "n=6"


@pytest.mark.parametrize("n_bootstrap", [0, 1])
def test_too_few_subject_resamples_are_refused(n_bootstrap):
    brain, profile = _brain()
    model = _model("m", np.stack([profile[layer][:, None, None] * np.ones((5, 6, 2)) for layer in range(5)]))
    with pytest.raises(InputError, match="--n-bootstrap must be a whole number >= 2"):
        apa.analyze({"m": model}, brain, outcome_kind="score", n_bootstrap=n_bootstrap)
