"""Layer discovery and depth binning on a CNN, ViTs, hybrids and networks without ``feature_info``.

Expected layer lists are written from each architecture's published structure (ResNet-18: 2 blocks per stage;
EfficientNet-B0: 1, 2, 2, 3, 3, 4, 1 blocks in 7 stages; Swin-T: 2, 2, 6, 2; LeViT-128: 4, 4, 4), not read back
from the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch

from cortexbench.errors import InputError
from cortexbench.extraction import extract_all
from cortexbench.plugins.models.timm_models.layers import discover_layers, layer_paths
from cortexbench.plugins.models.timm_models.model import build_untrained
from cortexbench.stimuli import StimulusSet


def check_depths(layers):
    count = len(layers)
    assert [l.depth for l in layers] == pytest.approx([i / (count - 1) for i in range(count)])
    assert [l.depth_bin for l in layers] == [math.floor(8 * i / count) for i in range(count)]
    assert set(l.depth_bin for l in layers) == set(range(8)) if count >= 8 else True


@pytest.fixture(scope="module")
def stimuli():
    rng = np.random.default_rng(0)
    return StimulusSet.from_arrays("s", [rng.integers(0, 255, (40, 50, 3), dtype=np.uint8) for _ in range(2)],
                                   ["a", "b"])


def test_cnn_feature_info_and_blocks():
    model = build_untrained("resnet18", 0)
    assert [l.name for l in model.layers] == ["act1", "layer1", "layer2", "layer3", "layer4", "fc"]
    assert [l.layout for l in model.layers] == ["NCHW"] * 5 + ["NC"]
    check_depths(model.layers)
    blocks = build_untrained("resnet18", 0, granularity="blocks")
    assert [l.name for l in blocks.layers] == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    check_depths(blocks.layers)


def test_vit_blocks_are_token_sequences():
    model = build_untrained("vit_tiny_patch16_224", 0)
    assert [l.name for l in model.layers] == [f"blocks.{i}" for i in range(12)] + ["head"]
    assert [l.layout for l in model.layers] == ["NLC"] * 12 + ["NC"]
    check_depths(model.layers)
    network = timm.create_model("vit_tiny_patch16_224")
    assert layer_paths(network, "shen") == [f"blocks.{i}" for i in range(12)]


def test_stage_widening_and_singletons_in_efficientnet():
    network = timm.create_model("efficientnet_b0").eval()
    depths = (1, 2, 2, 3, 3, 4, 1)
    expected = [f"blocks.{s}" if n == 1 else f"blocks.{s}.{b}" for s, n in enumerate(depths) for b in range(n)
                if n > 1 or b == 0]
    assert layer_paths(network, "blocks") == expected            # feature_info skips stages 3 and 5
    assert [e["module"] for e in network.feature_info] == ["blocks.0", "blocks.1", "blocks.2", "blocks.4",
                                                            "blocks.6"]
    assert layer_paths(network, "shen") == [f"blocks.{s}" for s in range(7)]


def test_swin_blocks_are_channels_last_and_pool_over_space(stimuli):
    model = build_untrained("swin_tiny_patch4_window7_224", 0, granularity="blocks")
    names = [l.name for l in model.layers]
    assert names == [f"layers.{s}.blocks.{b}" for s, n in enumerate((2, 2, 6, 2)) for b in range(n)]
    assert {l.layout for l in model.layers} == {"NHWC"}
    check_depths(model.layers)
    layer = "layers.1.blocks.1"
    got = extract_all(model, stimuli, [layer], pooling="avg")[layer]
    captured = {}
    network = model.network()
    handle = network.get_submodule(layer).register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    transform = model.preprocessing.transform()
    with torch.inference_mode():
        network(torch.stack([transform(stimuli.load(i)) for i in range(2)]))
    handle.remove()
    out = captured["out"]
    assert out.shape[1] == out.shape[2] == 28 and out.shape[3] == 192   # (batch, H, W, channels)
    np.testing.assert_allclose(got, out.mean(dim=(1, 2)).numpy(), rtol=1e-4, atol=1e-5)


def test_hybrid_levit_and_parallel_branches_of_inception():
    levit = timm.create_model("levit_128").eval()
    assert layer_paths(levit, "blocks", (3, 224, 224)) == [f"stages.{s}.blocks.{b}" for s in range(3)
                                                           for b in range(4)]
    layers = discover_layers(levit, (3, 224, 224))
    assert [l.name for l in layers] == ["stages.0", "stages.1", "stages.2", "head.linear"]
    assert [l.layout for l in layers] == ["NLC", "NLC", "NLC", "NC"]
    # an Inception module's branches all read the same input: they are not blocks in depth and stay whole
    inception = timm.create_model("inception_v3").eval()
    assert layer_paths(inception, "blocks", (3, 299, 299)) == ["Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d",
                                                               "Mixed_6e", "Mixed_7c"]


class LoopNet(torch.nn.Module):
    """No feature_info; a ModuleList run in a Python loop, as many research networks are written."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU())
                                          for _ in range(5))
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


def test_networks_without_feature_info_follow_shen_et_al():
    import torchvision

    vgg = torchvision.models.vgg11()
    assert not hasattr(vgg, "feature_info")
    assert layer_paths(vgg) == [f"features.{i}" for i in range(len(vgg.features))]  # Shen: every child
    loop = LoopNet().eval()
    layers = discover_layers(loop, (3, 16, 16))
    assert [l.name for l in layers] == [f"blocks.{i}" for i in range(5)]
    assert [l.depth_bin for l in layers] == [0, 1, 3, 4, 6]          # floor(8 i / 5)
    assert layer_paths(loop, "blocks", (3, 16, 16)) == [f"blocks.{i}" for i in range(5)]
    with pytest.raises(InputError, match="found no layers"):
        discover_layers(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), (3, 8, 8), "shen")
    with pytest.raises(InputError, match="granularity must be"):
        layer_paths(loop, "modules")
