"""Every registered plugin honours its interface (parametrized over whatever is installed, third-party included)."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import xarray as xr

from cortexbench.activations import CachedCandidate
from cortexbench.errors import CortexbenchError, DataError
from cortexbench.interfaces import MODALITIES, Benchmark, Metric, Model
from cortexbench.plugin_manager import get_plugin_manager
from cortexbench.stimuli import StimulusSet

MANAGER = get_plugin_manager()


def _ids(kind):
    return sorted(MANAGER.registrations(kind))


def test_no_plugin_failed_to_load():
    assert [str(f) for f in MANAGER.failures] == []


def _stimuli(modality: str, tmp_path) -> StimulusSet:
    rng = np.random.default_rng(0)
    if modality == "image":
        return StimulusSet.from_arrays("conformance", [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
                                                       for _ in range(2)], ["a", "b"])
    if modality == "text":
        return StimulusSet.from_texts("conformance", ["aardvark", "a red bicycle"], ids=["a", "b"])
    import av

    paths = []
    for clip in range(2):
        path = tmp_path / f"{clip}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=8)
            stream.width = stream.height = 32
            stream.pix_fmt = "yuv420p"
            for _ in range(24):  # 3 s at 8 fps
                frame = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        paths.append(path)
    return StimulusSet.from_files("conformance", paths, ["a", "b"], modality="video")


@pytest.mark.parametrize("identifier", _ids("model"))
def test_model_honours_the_interface(identifier, tmp_path):
    spec = MANAGER.model_spec(identifier)
    assert spec.description and set(spec.modalities) <= set(MODALITIES)
    try:
        model = MANAGER.create_model(identifier)
    except DataError as err:  # pretrained weights or data not available offline: must say how to get them
        assert re.search(r"weights|file|mirror|CORTEXBENCH_", str(err)), str(err)
        return
    assert isinstance(model, Model)
    assert model.identifier == identifier and set(model.modalities) == set(spec.modalities)
    layers = model.layers
    names = [layer.name for layer in layers]
    assert layers and len(set(names)) == len(names)
    depths = [layer.depth for layer in layers]
    assert all(0.0 <= d <= 1.0 for d in depths) and depths == sorted(depths)
    assert all(0 <= layer.depth_bin < 8 for layer in layers)
    json.dumps(dict(model.fingerprint()))                  # the cache key must be serializable
    for layer_names in model.region_layer_map.values():
        assert set(layer_names) <= set(names)
    stimuli = _stimuli(spec.modalities[0], tmp_path)
    chosen = sorted({names[0], names[-1]})
    acts = CachedCandidate(model).activations(stimuli, chosen)
    for name in chosen:
        assert acts[name].dims == ("stimulus", "feature") and acts[name].shape[0] == 2
        assert np.isfinite(acts[name].values).all()


@pytest.mark.parametrize("identifier", _ids("benchmark"))
def test_benchmark_declares_what_a_leaderboard_needs(identifier):
    spec = MANAGER.benchmark_spec(identifier)
    assert spec.version and spec.citation and spec.description
    assert spec.bibtex == "" or spec.bibtex.lstrip().startswith("@")
    assert set(spec.modalities) <= set(MODALITIES)
    if spec.metric:
        MANAGER.metric_spec(spec.metric)                   # refers to a registered metric
    for dataset in spec.datasets:
        MANAGER.dataset(dataset)                           # and to registered datasets
    if spec.parent:
        assert isinstance(spec.parent, str)
    try:
        benchmark = MANAGER.create_benchmark(identifier)
    except CortexbenchError as err:                        # needs user-held data: must say where to put it
        assert re.search(r"root|CORTEXBENCH_|folder|directory", str(err)), str(err)
        return
    assert isinstance(benchmark, Benchmark) or callable(benchmark)


@pytest.mark.parametrize("identifier", _ids("metric"))
def test_metric_accepts_its_declared_contract(identifier):
    spec = MANAGER.metric_spec(identifier)
    metric = MANAGER.create_metric(identifier)
    assert isinstance(metric, Metric)
    assert metric.identifier == identifier and str(metric.version) == str(spec.version)
    contract = metric.contract
    n = max(contract.min_stimuli, 24)
    rng = np.random.default_rng(1)
    ids = [f"s{i}" for i in range(n)]
    latent = rng.normal(size=(n, 3))
    source = xr.DataArray(latent @ rng.normal(size=(3, 7)) + 0.1 * rng.normal(size=(n, 7)),
                          dims=contract.source_dims, coords={"stimulus": ids})
    target = xr.DataArray(latent @ rng.normal(size=(3, 5)) + 0.1 * rng.normal(size=(n, 5)),
                          dims=contract.target_dims, coords={"stimulus": ids})
    result = metric(source, target)
    assert isinstance(result, xr.DataArray) and np.isfinite(result.values).all()


@pytest.mark.parametrize("identifier", _ids("dataset"))
def test_dataset_declarations_are_complete(identifier, shared_data):
    spec = MANAGER.dataset(identifier)
    assert spec.files and spec.description
    for f in spec.files:
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256) and f.size > 0, f
        assert f.url == "" or f.url.startswith("https://"), f
        assert not f.path.startswith("/") and ".." not in f.path.split("/")
    mirrored = shared_data / spec.folder
    if mirrored.is_dir():                                  # datasets we hold must verify byte for byte
        from cortexbench.data import check_file

        bad = [(f.path, check_file(mirrored / f.path, f)) for f in spec.files]
        assert [b for b in bad if b[1]] == []
