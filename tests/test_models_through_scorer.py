"""A timm model, an HF vision model, MiniLM (real weights), GloVe and video input, all through ``scorer.score``.

A tiny benchmark plugin plants two categories in its stimuli (reddish vs bluish images and clips; sentences or
words about animals vs vehicles) and scores each layer by the Spearman correlation between the model's RDM and the
category RDM. The stored raw scores must equal the same computation done here on activations extracted directly,
and models that see the categories must find them.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from scipy.spatial.distance import pdist

from cortexbench import assembly
from cortexbench.extraction import extract_all
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import BenchmarkSpec
from cortexbench.plugin_manager import PluginManager
from cortexbench.scorer import score
from cortexbench.stimuli import StimulusSet

ANIMALS = ["a dog chases a ball in the park", "the cat sleeps on a warm sofa", "a horse grazes in the green field",
           "two cows stand in the barn"]
VEHICLES = ["a red car drives down the highway", "the truck carries heavy cargo", "a city bus stops at the station",
            "the train leaves the railway platform"]
WORDS = ["dog", "cat", "horse", "cow", "car", "truck", "bus", "train"]


def _images(n_per=4, size=48):
    rng = np.random.default_rng(0)
    arrays = []
    for category in (0, 1):
        for _ in range(n_per):
            img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            img[..., 0 if category == 0 else 2] += 150
            arrays.append(img)
    return arrays


def _videos(folder, n_per=3, size=32):
    import av

    paths = []
    for category in (0, 1):
        for clip in range(n_per):
            path = folder / f"c{category}_{clip}.mp4"
            rng = np.random.default_rng(10 * category + clip)
            with av.open(str(path), "w") as container:
                stream = container.add_stream("libx264", rate=8)
                stream.width = stream.height = size
                stream.pix_fmt = "yuv420p"
                for _ in range(24):  # 3 s at 8 fps
                    frame = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
                    frame[..., 0 if category == 0 else 2] += 150
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                container.mux(stream.encode())
            paths.append(path)
    return paths


def planted_stimuli(kind: str, folder) -> StimulusSet:
    if kind == "image":
        return StimulusSet.from_arrays("planted-images", _images(), [f"i{i}" for i in range(8)])
    if kind == "video":
        return StimulusSet.from_files("planted-videos", _videos(folder), [f"v{i}" for i in range(6)],
                                      modality="video")
    texts = ANIMALS + VEHICLES if kind == "sentences" else WORDS
    return StimulusSet.from_texts(f"planted-{kind}", texts, ids=[f"t{i}" for i in range(8)])


def category_score(features: np.ndarray) -> float:
    n = len(features)
    categories = np.repeat([0, 1], n // 2)[:, None]
    return float(scipy.stats.spearmanr(pdist(features.astype(np.float64), "correlation"),
                                       pdist(categories, "cityblock"))[0])


class PlantedBenchmark:
    def __init__(self, kind: str, folder, layers: list[str] | None, pooling: str):
        self.kind, self.folder, self.layers, self.pooling = kind, folder, layers, pooling
        self.identifier, self.version, self.metric = f"planted.{kind}", "1", ""

    def __call__(self, candidate):
        stimuli = planted_stimuli(self.kind, self.folder)
        layers = self.layers or [layer.name for layer in candidate.layers]
        acts = candidate.activations(stimuli, layers, pooling=self.pooling)
        values = [category_score(np.asarray(acts[name].values)) for name in layers]
        raw = xr.DataArray(values, dims="layer", coords={"layer": layers})
        return assembly.make(score=max(values), score_error=0.0, ceiling=1.0, raw=raw, attrs={
            "model": candidate.identifier, "benchmark": self.identifier, "benchmark_version": self.version,
            "metric": "category-rdm-spearman", "metric_version": "1", "ceiling_method": "none (planted categories)",
            "error_method": "none"})


def _plugin(folder):
    class Planted:
        @hookimpl
        def cortexbench_benchmarks(self):
            specs = []
            for kind, modality in (("image", "image"), ("video", "video"), ("sentences", "text"),
                                   ("words", "text")):
                specs.append(BenchmarkSpec(
                    identifier=f"planted.{kind}", description=f"planted categories ({kind})", version="1",
                    citation="test fixture", modalities=(modality,),
                    factory=lambda kind=kind, layers=None, pooling="avg": PlantedBenchmark(kind, folder, layers,
                                                                                            pooling)))
            return specs
    return Planted()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    manager = PluginManager(extra_plugins=[("planted", _plugin(folder))])
    assert [str(f) for f in manager.failures] == []
    return manager, folder, tmp_path_factory.mktemp("registry"), tmp_path_factory.mktemp("acts")


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    import torch

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                       intermediate_size=64)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


# (model, benchmark, options, layers, pooling, the best layer's score must exceed; a chance RDM gives about
# 0 +- 0.19 on 28 pairs, and a perfect two-category RDM at most 0.86 with the ties of a binary RDM)
CASES = [
    ("timm/resnet18.untrained-seed0", "planted.image", {}, ["act1", "layer1"], "avg", 0.5),
    ("timm/resnet18.untrained-seed0", "planted.video", {}, ["act1", "layer2"], "flatten", 0.5),
    ("hf/test-org/tiny-vit", "planted.image", "tiny_vit", ["hidden_states.0", "hidden_states.3"], "avg", 0.5),
    ("hf/sentence-transformers/all-MiniLM-L6-v2", "planted.sentences", {}, None, "avg", 0.4),
    ("glove/6B-50d", "planted.words", {}, None, "avg", 0.4),
]


@pytest.mark.parametrize("model, benchmark, options, layers, pooling, floor", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_extracts_through_the_scorer(setup, tiny_vit, model, benchmark, options, layers, pooling, floor):
    manager, folder, registry, acts = setup
    options = {"weights": str(tiny_vit)} if options == "tiny_vit" else options
    result = score(model, benchmark, registry=registry, device="cpu", cache_dir=acts, model_options=options,
                   benchmark_options={"layers": layers, "pooling": pooling}, progress=False, plugins=manager)
    raw = result.assembly["raw"]
    assert result.path is not None and result.path.is_file()
    # the same numbers from activations extracted here, without the scorer or its cache
    direct_model = manager.create_model(model, **options)
    names = list(raw["layer"].values)
    stimuli = planted_stimuli(benchmark.split(".")[1], folder)
    direct = extract_all(direct_model, stimuli, names, pooling=pooling, batch_size=3)
    expected = [category_score(direct[name]) for name in names]
    np.testing.assert_allclose(raw.values, expected, atol=1e-5)
    assert float(result.assembly["score"]) > floor, raw.values
    # a second run hits the activation cache and gives the same numbers
    again = score(model, benchmark, registry=registry, device="cpu", cache_dir=acts, model_options=options,
                  benchmark_options={"layers": layers, "pooling": pooling}, progress=False, plugins=manager,
                  store=False)
    assert again.cache_misses == 0 and again.cache_hits == len(names)
    np.testing.assert_allclose(again.assembly["raw"].values, raw.values)
