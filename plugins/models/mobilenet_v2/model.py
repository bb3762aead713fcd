"""The ``mobilenet_v2`` model: recovered float network, 19 feature blocks plus the logits."""
from __future__ import annotations

from cortexbench.data import resolve
from cortexbench.extraction import Preprocessing, TorchImageModel
from cortexbench.interfaces import make_layers

from . import DATASET
from .recover import ENGINE, load_quantized, recover_float_model

LAYERS = [f"features.{i}" for i in range(19)] + ["classifier"]


def build_model() -> TorchImageModel:
    weights = resolve(DATASET, "mobilenet_quantized.pt")
    sha = DATASET.file("mobilenet_quantized.pt").sha256

    def build():
        return recover_float_model(load_quantized(weights, ENGINE))

    return TorchImageModel(
        identifier="mobilenet_v2",
        build=build,
        layers=make_layers(LAYERS, ["NCHW"] * 19 + ["NC"]),
        preprocessing=Preprocessing(input_size=224, resize="direct"),
        weights_id=f"sha256:{sha}",
        region_layer_map={"V1": ("features.3",), "V4": ("features.7",), "IT": ("features.14",)},
        fingerprint_extra={"recovery": "dequantized int8, batch norm folded", "quantized_engine": ENGINE},
    )


def imagenet_labels() -> list[str]:
    return resolve(DATASET, "words.txt").read_text().splitlines()
