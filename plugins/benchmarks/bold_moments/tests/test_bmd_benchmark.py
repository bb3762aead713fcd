"""BOLD Moments benchmark end to end on a miniature in the published layout with planted responses.

The fixture: 61 train clips (one excluded id) and 17 test clips (one excluded), tiny mp4s written with PyAV, 4
subjects x 4 HCP-MMP1 regions on a subset of the real fsLR32k grayordinates, betas pickled like the dataset's, ncsnr
by GLMsingle's formula. Responses are linear read-outs of layer ``b`` of a small video model (three parallel branches
that see colour, coarse position and edges), extracted through the same cached video path the benchmark uses; the
benchmark must select ``b`` for every region, with RSA and with ridge.
"""
from __future__ import annotations

import pickle
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from cortexbench import alignment_patterns as apa
from cortexbench.activations import ActivationStore, CachedCandidate
from cortexbench.extraction import Preprocessing, TorchImageModel
from cortexbench.errors import InputError
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import ModelSpec, make_layers
from cortexbench.plugin_manager import PluginManager
from cortexbench.registry import variant_of
from cortexbench.plugins.benchmarks.bold_moments import atlas, fixture, layout
from cortexbench.plugins.benchmarks.bold_moments.benchmark import BoldMomentsBenchmark
from cortexbench.scorer import score, score_brain_to_brain
from cortexbench.stimuli import StimulusSet
from cortexbench.video import VideoSampling

REGIONS = ("V1", "V2", "MT", "FFC")
SUBJECTS = ("sub-01", "sub-02", "sub-03", "sub-04")
TRAIN = [f"{i:04d}" for i in range(1, 61)] + ["0258"]
TEST = [f"{i:04d}" for i in range(1001, 1018)]
PLANTED = "b"


class Branches(torch.nn.Module):
    """Three independent read-outs of the frames: mean colour (a), coarse layout (b), edges (c)."""

    def __init__(self):
        super().__init__()
        # odd functions of centred pixels: features centred across clips, so RDMs reflect the read-out geometry
        self.a = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(3, 16, 1, bias=False),
                                     torch.nn.Tanh())
        self.b = torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Conv2d(3, 8, 1, bias=False), torch.nn.Tanh())
        self.c = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(8))

    def forward(self, x):
        return self.a(x), self.b(x), self.c(x)


def _build() -> torch.nn.Module:
    torch.manual_seed(0)
    return Branches()


def make_model() -> TorchImageModel:
    return TorchImageModel(identifier="test/branches", build=_build, layers=make_layers(["a", "b", "c"]),
                           preprocessing=Preprocessing(input_size=32, mean=(0.5,) * 3, std=(0.25,) * 3), weights_id="random-seed-0",
                           modalities=frozenset({"image", "video"}), video=VideoSampling(size=32))


_plugin = types.SimpleNamespace(cortexbench_models=hookimpl(lambda: [ModelSpec(
    "test/branches", lambda **_: make_model(), "three-branch toy video model", modalities=("image", "video"))]))


@pytest.fixture(scope="module")
def bmd(tmp_path_factory) -> types.SimpleNamespace:
    root = tmp_path_factory.mktemp("ds005165")
    videos = fixture.write_videos(root / layout.VIDEO_DIRS[0], TRAIN + TEST, size=32)
    atlas_path = root / "atlas.npz"
    fixture.write_atlas(atlas_path, atlas.load(), REGIONS, per_hemisphere=12)
    small = atlas.load(atlas_path)
    store = ActivationStore(root / "activations")
    # the clips the benchmark keeps, in its order, so that the benchmark finds every layer in the cache
    kept = [i for i in TRAIN + TEST if i not in ("0258", "1001")]
    clips = StimulusSet.from_files("fixture-clips", [videos[(TRAIN + TEST).index(i)] for i in kept], ids=kept,
                                   modality="video")
    acts = CachedCandidate(make_model(), store).activations(clips, ["a", "b", "c"], pooling="flatten")
    planted = dict(zip(kept, np.asarray(acts[PLANTED].values)))
    filler = np.mean(list(planted.values()), 0)               # excluded clips: any response, the loader drops them
    features = {split: np.stack([planted.get(i, filler) for i in ids]) for split, ids in (("train", TRAIN),
                                                                                         ("test", TEST))}
    betas, signal = fixture.plant(features, small, REGIONS, SUBJECTS, noise=0.5, seed=0)
    for subject in SUBJECTS:
        fixture.write_subject(root, subject, betas[subject], {"train": TRAIN, "test": TEST})
    fixture.write_captions(root / "captions.json", TRAIN + TEST)
    options = dict(root=str(root), atlas=str(atlas_path), n_partners=2, n_bootstrap=50, device="cpu",
                   regions=list(REGIONS))
    return types.SimpleNamespace(root=root, atlas=small, store=store, options=options, signal=signal)


@pytest.mark.parametrize("metric", ["rsa", "ridge"])
def test_benchmark_selects_the_planted_layer(bmd, metric):
    bench = BoldMomentsBenchmark(identifier=f"bmd.{metric}", version="1", metric_name=metric, **bmd.options)
    result = bench(CachedCandidate(make_model(), bmd.store))
    raw = result["raw"]
    assert raw.dims == ("layer", "region", "subject", "split")
    assert list(raw["subject"].values) == list(SUBJECTS) and list(raw["region"].values) == list(REGIONS)
    assert result.attrs["n_train"] == 60 and result.attrs["n_test"] == 16      # 0258 and 1001 excluded
    import json

    assert set(json.loads(result.attrs["best_layer"]).values()) == {PLANTED}
    test_mean = raw.sel(split="test").mean("subject")
    assert (test_mean.argmax("layer").values == list(raw["layer"].values).index(PLANTED)).all()
    assert 0 < float(result["ceiling"]) < 1 and np.isfinite(float(result["score"]))
    # reliable vertices: an independent count from the written ncsnr pickles
    for subject in SUBJECTS:
        with open(layout.ncsnr_path(bmd.root, subject), "rb") as handle:
            ncsnr, _ = pickle.load(handle)
        for region in REGIONS:
            expected = int((ncsnr[bmd.atlas.region_indices(region)] >= 0.2).sum())
            assert int(result["n_vertices"].sel(region=region, subject=subject)) == expected


def test_score_ceiling_and_apa_through_the_registry(bmd, registry):
    plugins = PluginManager(extra_plugins=[("test_models", _plugin)])
    scored = score("test/branches", "bmd.rsa", registry=registry, device="cpu", cache_dir=bmd.root / "activations",
                   benchmark_options=bmd.options, plugins=plugins, progress=False)
    assert scored.path is not None and scored.cache_hits == 3          # the fixture already extracted every layer
    brain = score_brain_to_brain("bmd.rsa", registry=registry, device="cpu", benchmark_options=bmd.options,
                                 plugins=plugins, progress=False)
    ds = brain.assembly
    pairs = ds["raw"].sel(split="test")
    partner = ~np.isnan(pairs.sel(source_region="V1", region="V1").values)   # (source subject, subject)
    assert (partner.sum(0) == 2).all() and not partner.diagonal().any()
    # same-region prediction beats cross-region prediction (regions have their own read-outs)
    diag = np.nanmean([pairs.sel(source_region=r, region=r).values for r in REGIONS])
    off = np.nanmean([pairs.sel(source_region=r, region=q).values for r in REGIONS for q in REGIONS if q != r])
    assert diag > off
    # the model's lower ceiling is the brain-to-brain one
    np.testing.assert_allclose(scored.assembly["lower_ceiling"].values, ds["lower_ceiling"].values)
    assert np.isfinite(ds["upper_ceiling"].values).all()
    models, stored_brain = apa.load_from_registry(registry, "bmd.rsa", variant=variant_of(None, bmd.options))
    assert list(models) == ["test/branches"]
    result = apa.analyze(models, stored_brain, n_bootstrap=50)
    assert set(result["best_layer"].values.ravel()) == {PLANTED}
    assert np.isfinite(result["aps_mean"].values).all() and np.isfinite(result["brain_aps"].values).all()


class _BagOfWords:
    """A deterministic text model: hashed word counts (layer ``words``) and their square (``squared``)."""

    identifier = "test/bag-of-words"
    modalities = frozenset({"text"})
    region_layer_map: dict = {}

    @property
    def layers(self):
        return make_layers(["words", "squared"], "NC")

    def fingerprint(self):
        return {"model": self.identifier}

    def iter_activations(self, stimuli, layers, *, pooling, device, batch_size, precision):
        from cortexbench.interfaces import ActivationBatch

        vocab = {}
        rows = []
        for text in stimuli.items:
            row = np.zeros(32)
            for word in text.split():
                row[vocab.setdefault(word, len(vocab)) % 32] += 1
            rows.append(row)
        rows = np.array(rows, dtype=np.float32)
        yield ActivationBatch(0, {"words": rows, "squared": rows ** 2})


def test_caption_route_scores_text_models_on_averaged_captions(bmd):
    bench = BoldMomentsBenchmark(identifier="bmd.captions-rsa", version="1", metric_name="rsa", route="captions",
                                 captions=str(bmd.root / "captions.json"), **bmd.options)
    stimuli, n_train, per_clip = bench.stimuli()
    assert per_clip == 5 and n_train == 60 and len(stimuli) == 5 * 76 and stimuli.modality == "text"
    result = bench(CachedCandidate(_BagOfWords(), bmd.store))
    assert result["raw"].sizes == {"layer": 2, "region": 4, "subject": 4, "split": 2}
    assert np.isfinite(result["raw"].values).all()
    with pytest.raises(Exception, match="text"):
        BoldMomentsBenchmark(identifier="bmd.rsa", version="1", metric_name="rsa", **bmd.options)(
            CachedCandidate(_BagOfWords(), bmd.store))


@pytest.mark.parametrize("bad, message", [
    ({"n_partners": 0}, "n_partners must be a whole number >= 1"),
    ({"n_partners": 3, "subjects": ["sub-01", "sub-02", "sub-03"]}, "n_partners=3 needs more than 3 subjects"),
    ({"n_bootstrap": 1}, "n_bootstrap must be at least 2"),
])
def test_impossible_protocol_options_are_refused_when_the_benchmark_is_built(tmp_path, bad, message):
    options = {**dict(root=str(tmp_path), n_partners=2, n_bootstrap=50, device="cpu"), **bad}
    with pytest.raises(InputError, match=message):
        BoldMomentsBenchmark(identifier="bmd.rsa", version="1", metric_name="rsa", **options)
