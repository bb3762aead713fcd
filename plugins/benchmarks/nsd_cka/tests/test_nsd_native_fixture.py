"""Native NSD layout end to end: files written in the published format with one planted model layer.

Values are checked against an independent reading of the fixture files (h5py + scipy + nibabel, written here) and a
numpy CKA; the planted layer's depth bin must come out on top.
"""
import json

import h5py
import nibabel
import numpy as np
import pytest
import scipy.io

from cortexbench.errors import DataError, InputError
from cortexbench.interfaces import ActivationBatch
from cortexbench.scorer import score

# the planted fixture's constants (see conftest.py)
MODEL, PLANTED, N_SHARED, N_PER_SUBJECT = "timm/resnet18.untrained-seed0", "act1", 12, 30
REGIONS = ("V1", "V2", "V3", "V4", "FFC", "4")
BY_LABEL = ("V1", "V2", "V3", "V4", "4", "FFC")      # the loader orders regions by HCP-MMP1 label (1, 4, 5, 6, 8, 18)
SESSIONS = 3


@pytest.fixture(scope="module")
def nsd_root(planted, tmp_path_factory):
    from cortexbench.plugins.benchmarks.nsd_cka import fixture

    assert (planted["model"], planted["layer"], planted["n_shared"]) == (MODEL, PLANTED, N_SHARED)
    ids = planted["ids"]
    root = tmp_path_factory.mktemp("nsd")
    captions = {i: [f"first caption of {i}", f"second caption of {i}"] for i in ids}
    fixture.write_native(root, planted["images"], planted["signal"], shared_ids=ids[:N_SHARED],
                         subject_ids={"subj01": ids[N_SHARED:N_SHARED + N_PER_SUBJECT],
                                      "subj02": ids[N_SHARED + N_PER_SUBJECT:]},
                         sessions=SESSIONS, regions=REGIONS, voxels=128, grid=(16, 12, 10), noise=0.3,
                         captions=captions)
    return root


@pytest.fixture(scope="module")
def result(nsd_root, tmp_path_factory):
    return score(MODEL, "nsd.rbf-cka", device="cpu", progress=False, registry=tmp_path_factory.mktemp("reg"),
                 benchmark_options={"root": str(nsd_root), "sessions": SESSIONS})


def direct_average(root, subject: str, region: str) -> dict[int, np.ndarray]:
    """Repeat-averaged responses of one region read straight from the files: 73k id -> voxel vector."""
    mat = scipy.io.loadmat(root / "nsddata/experiments/nsd/nsd_expdesign.mat")
    order = mat["masterordering"].ravel().astype(int) - 1
    images = mat["subjectim"][int(subject[4:]) - 1].astype(int) - 1
    atlas = nibabel.load(root / f"nsddata/ppdata/{subject}/func1pt8mm/roi/HCP_MMP1.nii.gz").get_fdata()
    # betas are (Z, Y, X): mask them with the transposed atlas, voxels in C order (as Shen et al.'s script)
    mask = np.rint(atlas).astype(int).transpose(2, 1, 0) == {"V1": 1, "V2": 4, "V3": 5, "V4": 6, "FFC": 18, "4": 8}[region]
    sums, counts = {}, {}
    for session in range(1, SESSIONS + 1):
        path = root / f"nsddata_betas/ppdata/{subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session{session:02d}.hdf5"
        with h5py.File(path, "r") as handle:
            betas = handle["betas"][()]                       # (trials, Z, Y, X)
        trials = betas.shape[0]
        for t in range(trials):
            image = images[order[(session - 1) * trials + t]]
            vec = betas[t][mask].astype(np.float64) / 300.0
            sums[image] = sums.get(image, 0) + vec
            counts[image] = counts.get(image, 0) + 1
    return {i: sums[i] / counts[i] for i in sums}


def test_planted_layer_depth_bin_ranks_first(result, planted):
    ds = result.assembly
    profile = ds["depth_profile"].sel(sigma=36.0).mean("subject")
    assert int(profile["bin"].values[int(np.argmax(profile.values))]) == planted["bin"]
    per_layer = ds["raw"].sel(sigma=36.0).mean(["region", "subject"])
    assert str(per_layer["layer"].values[int(np.argmax(per_layer.values))]) == PLANTED


def test_loader_matches_a_direct_reading_of_the_files(nsd_root, planted):
    from cortexbench.plugins.benchmarks.nsd_cka.native import NativeNSD

    source = NativeNSD(str(nsd_root), sessions=SESSIONS)
    resp = source.responses("subj02")
    ids = planted["ids"]
    assert resp.n_model == N_PER_SUBJECT
    assert resp.model_ids == tuple(f"nsd-{i:05d}" for i in sorted(ids[N_SHARED + N_PER_SUBJECT:]))
    assert resp.shared_ids == tuple(f"nsd-{i:05d}" for i in sorted(ids[:N_SHARED]))
    assert resp.regions == BY_LABEL and set(resp.n_columns.values()) == {128}
    assert (resp.repeats == 3).all()
    for region in ("V1", "4"):
        direct = direct_average(nsd_root, "subj02", region)
        expected = np.stack([direct[int(s[4:])] for s in resp.model_ids])
        np.testing.assert_allclose(resp.model_view(region), expected, atol=1e-5)
        shared = np.stack([direct[int(s[4:])] for s in resp.shared_ids])
        np.testing.assert_allclose(resp.shared_view(region, resp.shared_ids), shared, atol=1e-5)
    again = NativeNSD(str(nsd_root), sessions=SESSIONS).responses("subj02")   # served from the cache
    assert isinstance(again.array, np.memmap)
    np.testing.assert_array_equal(np.asarray(again.array), np.asarray(resp.array))


def test_raw_and_ceiling_equal_a_direct_numpy_computation(result, nsd_root, planted, reference_cka):
    from cortexbench.extraction import extract_all
    from cortexbench.plugin_manager import get_plugin_manager
    from cortexbench.stimuli import StimulusSet

    ds = result.assembly
    ids = planted["ids"]
    model_ids = sorted(ids[N_SHARED:N_SHARED + N_PER_SUBJECT])
    with h5py.File(nsd_root / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5", "r") as handle:
        pixels = [handle["imgBrick"][i] for i in model_ids]
    model = get_plugin_manager().create_model(MODEL)
    feats = extract_all(model, StimulusSet.from_arrays("direct", pixels, [str(i) for i in model_ids]),
                        ["layer3", PLANTED], pooling="avg")
    direct = direct_average(nsd_root, "subj01", "FFC")
    brain = np.stack([direct[i] for i in model_ids])
    for layer, sigma in (("layer3", 36.0), (PLANTED, 12.0), (PLANTED, 100.0)):
        expected = reference_cka(feats[layer], brain, sigma)
        got = float(ds["raw"].sel(layer=layer, region="FFC", subject="subj01", sigma=sigma))
        assert got == pytest.approx(expected, abs=2e-4)
    shared = sorted(ids[:N_SHARED])
    v1 = [direct_average(nsd_root, s, "V1") for s in ("subj01", "subj02")]
    expected = reference_cka(np.stack([v1[0][i] for i in shared]), np.stack([v1[1][i] for i in shared]), 36.0)
    for subject in ("subj01", "subj02"):   # one partner each: the ceiling is that pair's same-region CKA
        assert float(ds["ceiling_by_region"].sel(region="V1", subject=subject, sigma=36.0)) == pytest.approx(
            expected, abs=2e-4)


def test_headline_follows_the_stated_definition(result, planted):
    ds = result.assembly
    raw = ds["raw"].sel(sigma=36.0)
    bins = raw["depth_bin"].values
    at_bin = raw.values[bins == 6].mean(0)                               # (region, subject)
    k = int(np.ceil(0.05 * raw.sizes["region"]))
    per_subject = np.sort(at_bin, axis=0)[-k:].mean(0)
    assert float(ds["score"]) == pytest.approx(per_subject.mean(), abs=1e-12)
    assert float(ds["score_error"]) == pytest.approx(per_subject.std(ddof=1) / np.sqrt(2), abs=1e-12)
    ceiling = np.sort(ds["ceiling_by_region"].sel(sigma=36.0).values, axis=0)[-k:].mean(0).mean()
    assert float(ds["ceiling"]) == pytest.approx(ceiling, abs=1e-12)
    assert float(ds["ceiled_score"]) == pytest.approx(float(ds["score_shared"]) / ceiling)
    assert raw["layer"].values[bins == 6].tolist() == ["layer4"]        # resnet18's fc head is left out
    assert ds["raw"].dims == ("layer", "region", "subject", "sigma")
    assert ds["raw"].shape == (5, len(REGIONS), 2, 12)
    assert list(ds["region"].values) == list(BY_LABEL)
    assert list(ds["network"].values) == ["Visual"] * 4 + ["Somatomotor", "Visual"]
    assert json.loads(ds.attrs["subjects"]) == ["subj01", "subj02"]


def test_cli_env_root_registry_ceiling_and_apa(nsd_root, tmp_path, monkeypatch, capsys):
    from cortexbench import alignment_patterns as apa
    from cortexbench.cli import main
    from cortexbench.registry import Registry, variant_of

    monkeypatch.setenv("CORTEXBENCH_NSD_ROOT", str(nsd_root))
    registry = tmp_path / "registry"
    common = ["--registry", str(registry), "--quiet"]
    assert main(["score", MODEL, "nsd.rbf-cka", "--device", "cpu", "--benchmark-option", f"sessions={SESSIONS}",
                 *common]) == 0
    # same stimuli as the module's run: 5 layers x 2 subjects x (own images, shared images)
    assert "activation cache 20 hit(s) / 0 miss(es)" in capsys.readouterr().out
    assert main(["ceiling", "nsd.rbf-cka", "--device", "cpu", "--benchmark-option", f"sessions={SESSIONS}",
                 *common]) == 0
    variant = variant_of(None, {"sessions": SESSIONS})           # a subset of sessions is a variant of the score
    assert main(["show", MODEL, "nsd.rbf-cka", "--registry", str(registry), "--variant", variant,
                 "--plot", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000                   # the NSD depth-bin plot (BenchmarkSpec.plot)
    models, brain = apa.load_from_registry(Registry(registry), "nsd.rbf-cka", variant=variant)
    # the brain-to-brain scores keep the model scores' sigma dimension, so --select picks one sigma on both sides
    assert brain["raw"].dims == ("source_subject", "source_region", "region", "subject", "sigma")
    assert np.isnan(brain["raw"].sel(source_subject="subj01", subject="subj01")).all()
    stored = models[MODEL]
    assert stored["raw"].shape == (5, len(REGIONS), 2, 12)
    for sigma in (20.0, 36.0, 100.0):
        same = brain["raw"].sel(source_subject="subj02", source_region="V3", region="V3", subject="subj01",
                                sigma=sigma)
        assert float(same) == pytest.approx(float(stored["ceiling_by_region"].sel(region="V3", subject="subj01",
                                                                                  sigma=sigma)), abs=1e-9)
    head = stored["ceiling_by_region"].sel(sigma=36.0).mean().item()      # the stored headline is at sigma 36
    assert float(brain["score"]) == pytest.approx(head, abs=1e-9)
    for sigma in (20.0, 68.0):
        analysis = apa.analyze(models, brain, outcome_kind="score", n_bootstrap=20, select={"sigma": sigma})
        assert analysis["brain_pattern"].shape == (len(REGIONS), len(REGIONS))
        np.testing.assert_allclose(analysis["lower_ceiling"].sel(split="test").transpose("region", "subject").values,
                                   stored["ceiling_by_region"].sel(sigma=sigma).values, atol=1e-9)
        at = stored["raw"].sel(sigma=sigma)                  # split-less: the best layer by the subject mean
        best = at.mean("subject").argmax("layer")
        np.testing.assert_allclose(analysis["score"].sel(model=MODEL).values, at.isel(layer=best).values, atol=1e-9)
    assert main(["apa", "nsd.rbf-cka", "--registry", str(registry), "--variant", variant, "--select", "sigma=20",
                 "--n-bootstrap", "10", "--outcome", "score"]) == 0
    out = capsys.readouterr().out
    assert " N " in out and f"{MODEL[:39]:39}   2 " in out          # the text table shows n per model


def test_text_route_scores_first_captions(nsd_root, planted):
    from cortexbench.activations import CachedCandidate
    from cortexbench.interfaces import ActivationBatch, make_layers
    from cortexbench.plugins.benchmarks.nsd_cka.benchmark import NSDCKABenchmark

    class LetterCounts:
        """A tiny text model: letter counts (layer 0) and their cumulative sums (layer 1)."""

        identifier, modalities = "test/letter-counts", frozenset({"text"})
        layers, region_layer_map = make_layers(["counts", "cumulative"], "NC"), {}
        seen: list[str] = []

        def fingerprint(self):
            return {"model": self.identifier, "v": "1"}

        def iter_activations(self, stimuli, layers, *, pooling, device, batch_size, precision):
            texts = [stimuli.load(i) for i in range(len(stimuli))]
            self.seen.extend(texts)
            counts = np.array([[t.count(c) + 0.1 * t.count(d) for c in "abcdefghijklmnopqrstuvwxyz0123456789"
                                for d in "aeiou"] for t in texts], dtype=np.float32)
            features = {"counts": counts, "cumulative": np.cumsum(counts, 1)}
            yield ActivationBatch(0, {name: features[name] for name in layers})

    model = LetterCounts()
    bench = NSDCKABenchmark("nsd.rbf-cka", "1", "native", root=str(nsd_root), sessions=SESSIONS, ceiling=False)
    ds = bench(CachedCandidate(model))
    assert ds.attrs["stimulus_modality"] == "text" and ds["raw"].shape == (2, len(REGIONS), 2, 12)
    ids = planted["ids"]
    expected = [f"first caption of {i}" for i in sorted(ids[N_SHARED:N_SHARED + N_PER_SUBJECT])]
    assert model.seen[:N_PER_SUBJECT] == expected
    assert np.isnan(float(ds["ceiling"])) and "disabled" in ds.attrs["ceiling_method"]


def test_missing_data_errors_name_the_variable_and_layout(nsd_root, tmp_path, monkeypatch):
    from cortexbench.plugins.benchmarks.nsd_cka.benchmark import NSDCKABenchmark

    monkeypatch.delenv("CORTEXBENCH_NSD_ROOT", raising=False)
    with pytest.raises(DataError, match="CORTEXBENCH_NSD_ROOT") as err:
        NSDCKABenchmark("nsd.rbf-cka", "1", "native").load()
    assert "nsd_expdesign.mat" in str(err.value) and "betas_session01.hdf5" in str(err.value)
    with pytest.raises(DataError, match="sessions=N"):
        NSDCKABenchmark("nsd.rbf-cka", "1", "native", root=str(nsd_root), sessions=5).load()
    with pytest.raises(DataError, match="is not a folder"):
        NSDCKABenchmark("nsd.rbf-cka", "1", "native", root=str(tmp_path / "absent")).load()


def test_shared_image_scores_make_the_ceiled_score_like_for_like(result, nsd_root, planted, reference_cka):
    """The model is also scored on the shared images the ceiling uses; ceiled_score is that score / the ceiling."""
    from cortexbench.extraction import extract_all
    from cortexbench.plugin_manager import get_plugin_manager
    from cortexbench.plugins.benchmarks.nsd_cka import analysis
    from cortexbench.stimuli import StimulusSet

    ds = result.assembly
    shared = sorted(planted["ids"][:N_SHARED])
    assert ds["raw_shared"].dims == ds["raw"].dims and ds["raw_shared"].attrs["n_shared"] == N_SHARED
    with h5py.File(nsd_root / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5", "r") as handle:
        pixels = [handle["imgBrick"][i] for i in shared]
    feats = extract_all(get_plugin_manager().create_model(MODEL),
                        StimulusSet.from_arrays("direct-shared", pixels, [str(i) for i in shared]),
                        ["layer4"], pooling="avg")["layer4"]
    direct = direct_average(nsd_root, "subj02", "V2")
    expected = reference_cka(feats, np.stack([direct[i] for i in shared]), 28.0)
    got = float(ds["raw_shared"].sel(layer="layer4", region="V2", subject="subj02", sigma=28.0))
    assert got == pytest.approx(expected, abs=2e-4)
    on_shared = analysis.headline(ds["raw_shared"])
    assert float(ds["score_shared"]) == pytest.approx(on_shared["score"], abs=1e-12)
    assert float(ds["ceiled_score"]) == pytest.approx(on_shared["score"] / float(ds["ceiling"]), abs=1e-12)
    assert float(ds["ceiled_score"]) != pytest.approx(float(ds["score"]) / float(ds["ceiling"]), abs=1e-6)
    assert "score_shared" in ds.attrs["ceiling_method"]


class _PixelLayers:
    """A fake image model: five random tanh projections of 8x8 thumbnails, then a classifier head ("logits")."""

    identifier, modalities, region_layer_map = "test/pixel-layers", frozenset({"image"}), {}

    def __init__(self):
        from cortexbench.interfaces import make_layers

        self.layers = make_layers([f"l{i}" for i in range(5)] + ["logits"], "NC", heads=["logits"])
        rng = np.random.default_rng(0)
        self.weights = [rng.normal(size=(192, 24)) / 14 for _ in range(6)]
        self.requested: list[str] = []

    def fingerprint(self):
        return {"model": self.identifier, "v": "1"}

    def iter_activations(self, stimuli, layers, *, pooling, device, batch_size, precision):
        self.requested.extend(layers)
        x = np.stack([np.asarray(stimuli.load(i).resize((8, 8))).ravel() / 255.0 for i in range(len(stimuli))])
        features = {}
        for k, w in enumerate(self.weights):
            x = np.tanh(x @ w) if k == 0 else np.tanh(np.concatenate([x, x ** 2] * 4, 1)[:, :192] @ w)
            features[self.layers[k].name] = x.astype(np.float32)
        yield ActivationBatch(0, {name: features[name] for name in layers})


def test_classifier_heads_are_left_out_and_the_rest_rebinned(nsd_root):
    from cortexbench.activations import CachedCandidate
    from cortexbench.plugins.benchmarks.nsd_cka import analysis
    from cortexbench.plugins.benchmarks.nsd_cka.benchmark import NSDCKABenchmark

    model = _PixelLayers()
    assert [layer.depth_bin for layer in model.layers] == [0, 1, 2, 4, 5, 6]     # with the head, the logits fill bin 6
    bench = NSDCKABenchmark("nsd.rbf-cka", "1", "native", root=str(nsd_root), sessions=SESSIONS, ceiling=False)
    ds = bench(CachedCandidate(model))
    assert "logits" not in model.requested and "logits" not in ds["layer"].values
    assert ds["layer"].values.tolist() == ["l0", "l1", "l2", "l3", "l4"]
    assert ds["depth_bin"].values.tolist() == [0, 1, 3, 4, 6]            # floor(8 i / 5) over the five kept
    np.testing.assert_allclose(ds["depth"].values, np.arange(5) / 4)
    assert json.loads(ds.attrs["excluded_head_layers"]) == ["logits"] and ds.attrs["headline_depth_bin"] == 6
    k = analysis.top_k(len(REGIONS))
    l4 = ds["raw"].sel(layer="l4", sigma=36.0).values                     # (region, subject): bin 6 is l4 alone
    assert float(ds["score"]) == pytest.approx(np.sort(l4, axis=0)[-k:].mean(0).mean(), abs=1e-12)
    with pytest.raises(InputError, match="classifier head"):
        NSDCKABenchmark("nsd.rbf-cka", "1", "native", root=str(nsd_root), sessions=SESSIONS,
                        layers=["l1", "logits"])(CachedCandidate(model))


def test_a_truncated_betas_file_is_a_data_error_naming_it(nsd_root, tmp_path):
    import shutil

    from cortexbench.plugins.benchmarks.nsd_cka.native import NativeNSD

    copy = tmp_path / "nsd"
    shutil.copytree(nsd_root, copy)
    betas = copy / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.hdf5"
    data = betas.read_bytes()
    betas.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="(?s)betas_session02.hdf5.*re-download.*checksum"):
        NativeNSD(str(copy), sessions=SESSIONS).responses("subj01")
    betas.write_bytes(b"\x00" * 64 + data[64:])                          # a corrupt header
    with pytest.raises(DataError, match="betas_session02.hdf5: not a readable HDF5 file"):
        NativeNSD(str(copy), sessions=SESSIONS).responses("subj01")
