"""Pretrained timm weights offline: a local file, ``$CORTEXBENCH_WEIGHTS``, a Hugging Face cache, or a clear error.

The "pretrained" weights are the state_dict of a seeded untrained ResNet-18 written here, so the loaded network
must reproduce that seeded network exactly.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cortexbench.activations import ActivationStore, CachedCandidate
from cortexbench.errors import InputError, UnknownIdentifierError, WeightsNotFoundError
from cortexbench.extraction import extract_all
from cortexbench.plugin_manager import get_plugin_manager
from cortexbench.plugins.models.timm_models.model import build_pretrained, build_untrained
from cortexbench.stimuli import StimulusSet

MANAGER = get_plugin_manager()


@pytest.fixture(scope="module")
def seeded():
    return build_untrained("resnet18", 5)


@pytest.fixture(scope="module")
def stimuli():
    rng = np.random.default_rng(1)
    return StimulusSet.from_arrays("w", [rng.integers(0, 255, (36, 36, 3), dtype=np.uint8) for _ in range(3)],
                                   ["a", "b", "c"])


@pytest.fixture(scope="module")
def weights_file(seeded, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "resnet18_seed5.safetensors"
    save_file(seeded.network().state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def reference(seeded, stimuli):
    return extract_all(seeded, stimuli, ["layer2", "fc"])


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_local_file_reproduces_the_saved_network(weights_file, stimuli, reference):
    model = MANAGER.create_model("timm/resnet18.a1_in1k", weights=str(weights_file))
    assert model.identifier == "timm/resnet18.a1_in1k"
    assert model.fingerprint()["weights"] == f"sha256:{sha256(weights_file)}"
    got = extract_all(model, stimuli, ["layer2", "fc"])
    for name in got:
        np.testing.assert_allclose(got[name], reference[name], rtol=1e-6, atol=1e-6)


def test_weights_directory_setting(weights_file, stimuli, reference, tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    os.link(weights_file, folder / "timm__resnet18.a1_in1k.safetensors")
    monkeypatch.setenv("CORTEXBENCH_WEIGHTS", str(folder))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    for identifier in ("timm/resnet18.a1_in1k", "timm/resnet18"):  # the default tag finds the tagged file too
        model = MANAGER.create_model(identifier)
        assert model.identifier == identifier
        np.testing.assert_allclose(extract_all(model, stimuli, ["fc"])["fc"], reference["fc"], rtol=1e-6, atol=1e-6)


def fake_hub_cache(root, repo_id: str, filename: str, source) -> str:
    """The layout huggingface_hub writes: blobs/<sha256>, snapshots/<revision>/<file> -> blob, refs/main."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    digest, revision = sha256(source), "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "blobs" / digest).write_bytes(open(source, "rb").read())
    (repo / "snapshots" / revision / filename).symlink_to(f"../../blobs/{digest}")
    (repo / "refs" / "main").write_text(revision)
    return digest


def test_hugging_face_cache_layout(weights_file, stimuli, reference, tmp_path, monkeypatch):
    digest = fake_hub_cache(tmp_path / "hub", "timm/resnet18.a1_in1k", "model.safetensors", weights_file)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("CORTEXBENCH_WEIGHTS", raising=False)
    model = MANAGER.create_model("timm/resnet18.a1_in1k")
    assert model.fingerprint()["weights"] == f"sha256:{digest}"
    np.testing.assert_allclose(extract_all(model, stimuli, ["fc"])["fc"], reference["fc"], rtol=1e-6, atol=1e-6)


def test_missing_weights_say_exactly_what_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("CORTEXBENCH_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFoundError) as err:
        MANAGER.create_model("timm/convnext_tiny.in12k_ft_in1k")
    message = str(err.value)
    for needed in ("'timm/convnext_tiny.in12k_ft_in1k'", "'model.safetensors'",
                   str(tmp_path / "hub" / "models--timm--convnext_tiny.in12k_ft_in1k" / "snapshots"),
                   "huggingface-cli download timm/convnext_tiny.in12k_ft_in1k model.safetensors",
                   "--weights PATH", "CORTEXBENCH_WEIGHTS/timm__convnext_tiny.in12k_ft_in1k.safetensors"):
        assert needed in message, (needed, message)


def test_a_changed_weights_file_never_hits_a_stale_cache_entry(seeded, stimuli, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(seeded.network().state_dict(), str(path))
    store = ActivationStore(tmp_path / "acts")
    first = CachedCandidate(build_pretrained("resnet18", "a1_in1k", weights=path), store)
    before = first.activations(stimuli, ["fc"])["fc"].values.copy()
    other = build_untrained("resnet18", 6).network().state_dict()
    save_file(other, str(path))  # same path, new bytes
    second = CachedCandidate(build_pretrained("resnet18", "a1_in1k", weights=path), store)
    after = second.activations(stimuli, ["fc"])["fc"].values
    assert second.cache_misses == 1 and second.cache_hits == 0
    assert not np.allclose(before, after)
    third = CachedCandidate(build_pretrained("resnet18", "a1_in1k", weights=path), store)
    third.activations(stimuli, ["fc"])
    assert third.cache_hits == 1


def test_bad_identifiers_and_files(tmp_path):
    with pytest.raises(UnknownIdentifierError, match="resnet18.a1_in1k"):
        MANAGER.create_model("timm/resnet18.not_a_tag")
    with pytest.raises(UnknownIdentifierError, match=r"timm\.list_models\(\)"):   # a command that exists
        MANAGER.create_model("timm/resnet_nonexistent.untrained-seed0")
    with pytest.raises(InputError, match="is not a file"):
        MANAGER.create_model("timm/resnet18.a1_in1k", weights=str(tmp_path / "absent.pth"))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(2)}, str(wrong))
    with pytest.raises(InputError, match="does not fit resnet18"):
        MANAGER.create_model("timm/resnet18.a1_in1k", weights=str(wrong))


def test_listing_imports_neither_timm_nor_torch():
    code = ("import sys; from cortexbench.plugin_manager import get_plugin_manager; m = get_plugin_manager(); "
            "ids = m.registrations('model'); m.model_spec('timm/resnet50'); m.model_spec('hf/org/name'); "
            "print(len([i for i in ids if i.startswith('timm/')]), 'timm' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= 30 and out[1:] == ["False", "False"]


def test_architecture_without_pretrained_weights_points_to_the_untrained_variant():
    with pytest.raises(InputError, match="botnet50ts_256.untrained-seed0"):
        MANAGER.create_model("timm/botnet50ts_256")
