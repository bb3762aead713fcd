"""Hugging Face vision backbones: ``AutoModel`` + ``AutoImageProcessor``, every entry of ``hidden_states``.

Each stimulus goes through the repository's own image processor in a DataLoader worker; the layers are
``hidden_states.0`` (the embedding output) to ``hidden_states.N`` (the last block), pooled like any other layer
(token sequences averaged over all tokens, class token included, as Shen et al. pool timm ViTs).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cortexbench.extraction import Preprocessing, TorchImageModel
from cortexbench.interfaces import Layer, make_layers
from cortexbench.pooling import pool


@dataclass
class HFVisionModel(TorchImageModel):
    """A ``TorchImageModel`` whose layers are the backbone's ``hidden_states`` instead of hooked modules."""

    def forward_layers(self, network: torch.nn.Module, inputs: torch.Tensor, wanted: Sequence[Layer],
                       pooling: str) -> dict[str, torch.Tensor]:
        hidden = network(pixel_values=inputs, output_hidden_states=True, return_dict=True).hidden_states
        return {layer.name: pool(hidden[int(layer.name.rsplit(".", 1)[1])], layer.layout, pooling)
                for layer in wanted}


class _Processor:
    """PIL image -> the processor's ``pixel_values[0]`` (a picklable callable for worker processes)."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image) -> torch.Tensor:
        return torch.as_tensor(self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0])


def build(identifier: str, folder: Path, weights_id: str, video_frames: str = "preprocess") -> HFVisionModel:
    import transformers
    from transformers import AutoImageProcessor, AutoModel

    from cortexbench.video import VideoSampling

    from . import hub

    network = hub.load_pretrained(AutoModel, folder, dtype=torch.float32).eval()
    processor = hub.load_pretrained(AutoImageProcessor, folder)
    transform = _Processor(processor)
    from PIL import Image

    probe = transform(Image.new("RGB", (64, 48)))
    with torch.inference_mode():
        hidden = network(pixel_values=probe[None], output_hidden_states=True, return_dict=True).hidden_states
    layouts = ["NLC" if h.ndim == 3 else "NCHW" if h.ndim == 4 else "NC" for h in hidden]
    layers = make_layers([f"hidden_states.{i}" for i in range(len(hidden))], layouts)
    return HFVisionModel(
        identifier=identifier,
        build=lambda: network,
        layers=layers,
        # the processor does all preprocessing; this records its input size for the fingerprint
        preprocessing=Preprocessing(input_size=int(probe.shape[-1]), resize="direct", mean=(0.0,) * 3,
                                    std=(1.0,) * 3),
        weights_id=weights_id,
        transform=transform,
        video=VideoSampling(frames=video_frames),
        fingerprint_extra={"transformers": transformers.__version__, "processor": type(processor).__name__,
                           "processor_config": processor.to_json_string()},
    )
