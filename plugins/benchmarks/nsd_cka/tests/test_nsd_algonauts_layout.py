"""Algonauts-2023 challenge layout: ROI bookkeeping, shared-image split, planted layer, HCP-MMP1 via fsaverage."""
import numpy as np
import pytest

from cortexbench.errors import DataError
from cortexbench.scorer import score

MODEL, PLANTED = "timm/resnet18.untrained-seed0", "act1"
#: Non-shared 73k ids for the subjects' own images (the shared1000 ids start at 2950, so 0..59 are not shared).
OWN_IDS = {"subj01": list(range(0, 30)), "subj02": list(range(30, 60))}
ROIS = {"prf-visualrois": {1: 8, 3: 8, 7: 6}, "streams": {1: 10, 5: 12}}


@pytest.fixture(scope="module")
def layout(planted, tmp_path_factory):
    from cortexbench.plugins.benchmarks.nsd_cka import fixture

    assert (planted["model"], planted["layer"]) == (MODEL, PLANTED)
    ids = planted["ids"]
    shared = ids[:12]
    images, signal = dict(planted["images"]), dict(planted["signal"])
    for subject, own in OWN_IDS.items():   # real pixels under non-shared ids
        first = 12 if subject == "subj01" else 42
        for k, fake in enumerate(own):
            images[fake], signal[fake] = planted["images"][ids[first + k]], planted["signal"][ids[first + k]]
    root = tmp_path_factory.mktemp("algonauts")
    atlas = tmp_path_factory.mktemp("fsaverage_label")
    fixture.write_algonauts(root, images, signal, subject_ids={s: [*own, *shared] for s, own in OWN_IDS.items()},
                            n_vertices=(60, 50), rois=ROIS, noise=0.2, hcp_atlas_dir=atlas,
                            hcp_regions=("V1", "V2", "V3"))
    return {"root": root, "atlas": atlas, "shared": sorted(shared), "planted": planted}


@pytest.fixture(scope="module")
def result(layout):
    return score(MODEL, "nsd.algonauts2023.rbf-cka", device="cpu", progress=False, store=False,
                 benchmark_options={"root": str(layout["root"])})


def test_roi_regions_and_vertex_counts_follow_the_masks(result, layout):
    ds = result.assembly
    expected = {"V1v": 16, "V2v": 16, "hV4": 12, "early": 20, "ventral": 24}   # both hemispheres
    assert list(ds["region"].values) == list(expected)
    for subject in ("subj01", "subj02"):
        assert dict(zip(ds["region"].values, ds["n_columns"].sel(subject=subject).values.tolist())) == expected
    assert ds["raw"].shape == (5, 5, 2, 12)
    assert list(ds["n_stimuli"].values) == [30, 30]
    assert ds["ceiling_by_region"].attrs["n_shared"] == 12


def test_rows_split_own_and_shared_images_and_match_the_files(layout):
    from cortexbench.plugins.benchmarks.nsd_cka.algonauts import Algonauts2023

    resp = Algonauts2023(str(layout["root"])).responses("subj02")
    assert resp.model_ids == tuple(f"nsd-{i:05d}" for i in OWN_IDS["subj02"])
    assert resp.shared_ids == tuple(f"nsd-{i:05d}" for i in layout["shared"])
    base = layout["root"] / "subj02"
    lh = np.load(base / "training_split/training_fmri/lh_training_fmri.npy")
    rh = np.load(base / "training_split/training_fmri/rh_training_fmri.npy")
    labels = np.concatenate([np.load(base / f"roi_masks/{h}.streams_challenge_space.npy") for h in ("lh", "rh")])
    both = np.concatenate([lh, rh], axis=1)
    files = sorted(p.name for p in (base / "training_split/training_images").iterdir())
    row_of = {f"nsd-{int(name.split('_nsd-')[1][:5]):05d}": r for r, name in enumerate(files)}
    expected = both[[row_of[s] for s in resp.model_ids]][:, labels == 5]
    np.testing.assert_array_equal(resp.model_view("ventral"), expected)


def test_planted_bin_first_and_raw_matches_numpy(result, layout, reference_cka):
    from cortexbench.extraction import extract_all
    from cortexbench.plugin_manager import get_plugin_manager
    from cortexbench.plugins.benchmarks.nsd_cka.algonauts import Algonauts2023

    ds = result.assembly
    profile = ds["depth_profile"].sel(sigma=36.0).mean("subject")
    assert int(profile["bin"].values[int(np.argmax(profile.values))]) == layout["planted"]["bin"]
    source = Algonauts2023(str(layout["root"]))
    resp = source.responses("subj01")
    stimuli = source.images("subj01", resp, "direct")
    feats = extract_all(get_plugin_manager().create_model(MODEL), stimuli, ["layer4"], pooling="avg")["layer4"]
    expected = reference_cka(feats, resp.model_view("hV4"), 20.0)
    assert float(ds["raw"].sel(layer="layer4", region="hV4", subject="subj01", sigma=20.0)) == pytest.approx(
        expected, abs=2e-4)


def test_hcp_atlas_regions_through_fsaverage(layout):
    from cortexbench.plugins.benchmarks.nsd_cka.algonauts import Algonauts2023

    resp = Algonauts2023(str(layout["root"]), hcp_atlas=str(layout["atlas"])).responses("subj01")
    assert resp.regions == ("V1", "V2", "V3")
    # write_algonauts splits each hemisphere's challenge vertices into len(hcp_regions) near-equal chunks
    assert resp.n_columns == {"V1": 20 + 17, "V2": 20 + 17, "V3": 20 + 16}


def test_captions_need_nsd_metadata_and_root_must_exist(layout, monkeypatch, tmp_path):
    from cortexbench.plugins.benchmarks.nsd_cka.benchmark import NSDCKABenchmark

    monkeypatch.delenv("CORTEXBENCH_NSD_ROOT", raising=False)
    monkeypatch.delenv("CORTEXBENCH_ALGONAUTS2023_ROOT", raising=False)
    bench = NSDCKABenchmark("nsd.algonauts2023.rbf-cka", "1", "algonauts2023", root=str(layout["root"]))
    subjects, responses, _ = bench.load()
    with pytest.raises(DataError, match="nsd_root="):
        bench._stimuli("subj01", responses["subj01"], "text")
    with pytest.raises(DataError, match="CORTEXBENCH_ALGONAUTS2023_ROOT"):
        NSDCKABenchmark("nsd.algonauts2023.rbf-cka", "1", "algonauts2023").load()
    (tmp_path / "subj01").mkdir()
    with pytest.raises(DataError, match="training_fmri"):
        NSDCKABenchmark("nsd.algonauts2023.rbf-cka", "1", "algonauts2023", root=str(tmp_path)).load()


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > should_not_exist",))


def test_a_roi_mapping_that_would_run_code_is_refused(layout, tmp_path, monkeypatch):
    """The mapping_*.npy dicts are pickles: they are read with the restricted unpickler, never np.load(allow_pickle)."""
    import shutil

    from cortexbench.plugins.benchmarks.nsd_cka.algonauts import Algonauts2023

    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "algonauts"
    shutil.copytree(layout["root"] / "subj01", copy / "subj01")
    mapping = copy / "subj01" / "roi_masks" / "mapping_streams.npy"
    np.save(mapping, np.array(_Evil(), dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"mapping_streams\.npy: the pickle refers to (posix|os|nt)\.system"):
        Algonauts2023(str(copy)).responses("subj01")
    assert not (tmp_path / "should_not_exist").exists()
