"""The ``mobilenet_v2`` model: recovered float network, 19 feature blocks plus the logits."""
from __future__ import annotations

from cortexbench.data import resolve
from cortexbench.extraction import Preprocessing, TorchImageModel
from cortexbench.interfaces import make_layers

from . import DATASET
from .recover import ENGINE, load_quantized, recover_float_model

LAYERS = [f"features.{i}" for i in range(19)] + ["classifier"]


REGION_LAYERS = {"V1": ("features.3",), "V4": ("features.7",), "IT": ("features.14",)}


def build_model() -> TorchImageModel:
    weights = resolve(DATASET, "mobilenet_quantized.pt")
    sha = DATASET.file("mobilenet_quantized.pt").sha256

    def build():
        return recover_float_model(load_quantized(weights, ENGINE))

    return _model("mobilenet_v2", build, f"sha256:{sha}",
                  {"recovery": "dequantized int8, batch norm folded", "quantized_engine": ENGINE})


def build_untrained(seed: int) -> TorchImageModel:
    """The same torchvision architecture, layers and preprocessing at seeded random init: only the weights differ."""

    def build():
        import torch
        import torchvision

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torchvision.models.mobilenet_v2(weights=None)

    return _model(f"mobilenet_v2.untrained-seed{seed}", build, f"untrained:torchvision-mobilenet_v2:seed{seed}", {})


def _model(identifier: str, build, weights_id: str, extra: dict) -> TorchImageModel:
    return TorchImageModel(
        identifier=identifier,
        build=build,
        layers=make_layers(LAYERS, ["NCHW"] * 19 + ["NC"], heads=["classifier"]),
        preprocessing=Preprocessing(input_size=224, resize="direct"),
        weights_id=weights_id,
        region_layer_map=REGION_LAYERS,
        fingerprint_extra=extra,
    )


def imagenet_labels() -> list[str]:
    return resolve(DATASET, "words.txt").read_text().splitlines()
