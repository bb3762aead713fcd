"""The 20-image real Algonauts-2023 sample through ``cortexbench score``: shapes, ROI bookkeeping, numbers.

Independent references: the vertex counts documented in the data folder's SOURCE.md (subj01, lh/rh), and a numpy CKA
on the derived ``subj01_sample_fsaverage_all.npz`` (the benchmark reads the original gzip JSON files instead).
"""
import numpy as np
import pytest

from cortexbench.cli import main

MODEL = "timm/resnet18.untrained-seed0"
BENCHMARK = "nsd.algonauts2023-sample.rbf-cka"
#: SOURCE.md, "label maps" table: name -> (lh vertices, rh vertices); labels absent in both are not regions.
DOCUMENTED = {"V1v": (710, 444), "V1d": (828, 991), "V2v": (632, 887), "V2d": (692, 725), "V3v": (567, 682),
              "V3d": (669, 535), "hV4": (531, 765), "EBA": (2837, 3400), "FBA-1": (574, 206), "FBA-2": (0, 856),
              "OFA": (432, 305), "FFA-1": (552, 330), "FFA-2": (0, 629), "OPA": (1863, 2806), "PPA": (1311, 891),
              "RSC": (401, 660), "OWFA": (317, 590), "VWFA-1": (1381, 397), "VWFA-2": (461, 431),
              "mfs-words": (490, 0), "early": (5169, 5304), "midventral": (867, 1050), "midlateral": (1091, 1191),
              "midparietal": (853, 1133), "ventral": (4974, 4852), "lateral": (3129, 3578), "parietal": (2346, 2314)}


@pytest.fixture(scope="module")
def stored(shared_data, tmp_path_factory):
    from cortexbench.registry import Registry

    registry = tmp_path_factory.mktemp("registry")
    assert main(["score", MODEL, BENCHMARK, "--device", "cpu", "--registry", str(registry), "--quiet"]) == 0
    return Registry(registry).get(MODEL, BENCHMARK).load()


def test_shapes_and_roi_bookkeeping(stored):
    assert stored["raw"].dims == ("layer", "region", "subject", "sigma")
    assert stored["raw"].shape == (5, len(DOCUMENTED), 1, 12)                 # resnet18 without its fc head
    assert "fc" not in stored["layer"].values and stored.attrs["excluded_head_layers"] == '["fc"]'
    assert stored["depth_bin"].values.tolist() == [0, 1, 3, 4, 6]             # floor(8 i / 5), re-binned
    assert list(stored["region"].values) == list(DOCUMENTED)
    counts = dict(zip(stored["region"].values, stored["n_columns"].sel(subject="subj01").values.tolist()))
    assert counts == {name: lh + rh for name, (lh, rh) in DOCUMENTED.items()}
    assert int(stored["n_stimuli"].sel(subject="subj01")) == 20
    assert np.isnan(float(stored["ceiling"])) and "single subject" in stored.attrs["ceiling_method"]
    assert list(stored["sigma"].values) == [float(s) for s in range(12, 101, 8)]


def test_numbers_equal_a_direct_computation(stored, shared_data, reference_cka):
    import gzip
    import json

    from cortexbench.extraction import extract_all
    from cortexbench.plugin_manager import get_plugin_manager
    from cortexbench.stimuli import StimulusSet

    folder = shared_data / "nsd" / "algonauts2023_subj01_sample"
    with np.load(folder / "subj01_sample_fsaverage_all.npz") as npz:
        lh, rh, lh_vertices, rh_vertices = npz["lh"], npz["rh"], npz["lh_vertices"], npz["rh_vertices"]

    def labels(family: str, side: str, vertices) -> np.ndarray:
        with gzip.open(folder / "vertices" / f"roi_{side}_{family}_color_map.gzip", "rt") as handle:
            return np.rint(np.array(json.load(handle)))[vertices]

    images = [folder / "training_images" / f"image{k:05d}.png" for k in range(1, 21)]
    model = get_plugin_manager().create_model(MODEL)
    feats = extract_all(model, StimulusSet.from_files("direct", images), ["layer1", "layer3", "layer4"], pooling="avg")
    cases = [("face", 2, "FFA-1", "layer4", 36.0), ("visual", 1, "V1v", "layer1", 12.0),
             ("anatomical", 5, "ventral", "layer3", 100.0)]
    for family, label, region, layer, sigma in cases:
        brain = np.concatenate([lh[:, labels(family, "left", lh_vertices) == label],
                                rh[:, labels(family, "right", rh_vertices) == label]], axis=1)
        expected = reference_cka(feats[layer], brain, sigma)
        got = float(stored["raw"].sel(layer=layer, region=region, subject="subj01", sigma=sigma))
        assert got == pytest.approx(expected, abs=2e-4), (region, layer, sigma)


def test_headline_and_analyses_follow_their_definitions(stored, tmp_path):
    from cortexbench.plugins.benchmarks.nsd_cka import analysis

    raw = stored["raw"].sel(subject="subj01")
    at_bin = raw.sel(sigma=36.0).values[raw["depth_bin"].values == 6].mean(0)   # resnet18: only layer4 is in bin 6
    k = int(np.ceil(0.05 * len(DOCUMENTED)))                                       # 2 of 27
    assert k == 2 and stored.attrs["top_k"] == 2
    assert float(stored["score"]) == pytest.approx(np.sort(at_bin)[-k:].mean(), abs=1e-12)
    top = set(stored["top_regions"].sel(subject="subj01").values.tolist())
    assert top == set(np.array(list(DOCUMENTED))[np.argsort(at_bin)[-k:]].tolist())
    delta = analysis.plot_sigma_sensitivity(stored, tmp_path / "sigma.png")
    expected = raw.sel(layer="layer4", sigma=68.0).values - raw.sel(layer="layer4", sigma=28.0).values
    np.testing.assert_allclose(delta.values, expected, atol=1e-12)
    analysis.plot_region_depth(stored, tmp_path / "depth.png")
    curves = analysis.plot_depth_bins(stored, tmp_path / "bins.png")          # ROI layout: one curve per region
    assert curves["group_mean"].attrs["grouping"] == "region" and curves["group_mean"].sizes["group"] == 8
    assert np.isnan(curves["group_sem"].values).all()                         # one subject: no error bars
    assert (tmp_path / "sigma.png").stat().st_size > 1000 and (tmp_path / "depth.png").stat().st_size > 1000
    with pytest.raises(Exception, match="Yeo-7"):   # Algonauts ROIs are not HCP-MMP1 regions
        analysis.network_summary(stored)
