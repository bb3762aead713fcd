"""Batched activation extraction for PyTorch image networks.

One loop serves every torch model: preprocessing described by data (as timm's data config), decoding in
DataLoader workers, forward hooks that pool on the device, a forward pass that stops after the deepest
requested layer, ``torch.inference_mode``, channels-last and bf16 autocast on CUDA, and pinned host copies.
Model plugins only say how to build the network, which modules are its layers, and how to preprocess.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .errors import InputError
from .interfaces import ActivationBatch, Layer
from .pooling import pool
from .stimuli import StimulusSet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input tensor.

    ``resize="direct"`` scales the whole image to ``input_size`` (no cropping: the whole stimulus stays visible,
    as Brain-Score does for stimuli framed for human viewing); ``resize="crop"`` scales the shorter side to
    ``input_size / crop_pct`` and centre-crops (timm/ImageNet evaluation).
    """

    input_size: int = 224
    resize: str = "direct"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def transform(self) -> Callable:
        from torchvision import transforms as T

        modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
                 "nearest": T.InterpolationMode.NEAREST}
        mode = modes.get(self.interpolation)
        if mode is None:
            raise InputError(f"interpolation must be one of {sorted(modes)}, got {self.interpolation!r}")
        if self.resize == "direct":
            steps = [T.Resize((self.input_size, self.input_size), interpolation=mode, antialias=True)]
        elif self.resize == "crop":
            steps = [T.Resize(int(round(self.input_size / self.crop_pct)), interpolation=mode, antialias=True),
                     T.CenterCrop(self.input_size)]
        else:
            raise InputError(f"resize must be 'direct' or 'crop', got {self.resize!r}")
        return T.Compose([*steps, T.ToTensor(), T.Normalize(self.mean, self.std)])

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class _ImageDataset(torch.utils.data.Dataset):
    def __init__(self, stimuli: StimulusSet, transform: Callable):
        self.stimuli, self.transform = stimuli, transform

    def __len__(self) -> int:
        return len(self.stimuli)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.stimuli.load(index))


class _StopForward(Exception):
    """Raised by the hook of the deepest requested layer: nothing after it needs computing."""


@dataclass
class TorchImageModel:
    """A torch image network with named layers; implements :class:`cortexbench.interfaces.Model`.

    ``build`` constructs the network (weights loaded) on the CPU; it is called once, on first extraction.
    ``modules`` maps layer names to module paths when they differ (default: the layer name is the path).
    """

    identifier: str
    build: Callable[[], torch.nn.Module]
    layers: tuple[Layer, ...]
    preprocessing: Preprocessing
    weights_id: str
    region_layer_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    modules: Mapping[str, str] = field(default_factory=dict)
    fingerprint_extra: Mapping[str, str] = field(default_factory=dict)
    modalities: frozenset[str] = frozenset({"image"})
    _network: torch.nn.Module | None = field(default=None, init=False, repr=False)
    _device: str | None = field(default=None, init=False, repr=False)

    def fingerprint(self) -> dict[str, str]:
        return {"model": self.identifier, "weights": self.weights_id, "preprocessing": self.preprocessing.as_json(),
                "torch": torch.__version__.split("+")[0], "class": type(self).__qualname__, **self.fingerprint_extra}

    def network(self, device: str = "cpu") -> torch.nn.Module:
        """The network in eval mode on ``device`` (built once, moved when the device changes)."""
        if self._network is None:
            self._network = self.build().eval()
        if self._device != device:
            self._network.to(device)
            if device.startswith("cuda"):
                self._network.to(memory_format=torch.channels_last)
            self._device = device
        return self._network

    def _layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise InputError(f"model {self.identifier!r} has no layer {name!r}; its layers are "
                         f"{[l.name for l in self.layers]}")

    def iter_activations(self, stimuli: StimulusSet, layers: Sequence[str], *, pooling: str = "avg",
                         device: str = "cpu", batch_size: int = 64, precision: str = "fp32",
                         ) -> Iterator[ActivationBatch]:
        if stimuli.modality not in self.modalities:
            raise InputError(f"model {self.identifier!r} accepts {sorted(self.modalities)} stimuli, "
                             f"stimulus set {stimuli.identifier!r} is {stimuli.modality}")
        wanted = [self._layer(name) for name in layers]
        order = {layer.name: i for i, layer in enumerate(self.layers)}
        deepest = max(wanted, key=lambda layer: order[layer.name]).name
        network = self.network(device)
        named = dict(network.named_modules())
        outputs: dict[str, torch.Tensor] = {}

        def make_hook(layer: Layer):
            def hook(_module, _inputs, output):
                if isinstance(output, (tuple, list)):
                    output = output[0]
                outputs[layer.name] = pool(output, layer.layout, pooling)
                if layer.name == deepest:
                    raise _StopForward
            return hook

        handles = []
        for layer in wanted:
            path = self.modules.get(layer.name, layer.name)
            if path not in named:
                raise InputError(f"model {self.identifier!r}: layer {layer.name!r} maps to module {path!r}, "
                                 "which the network does not have")
            handles.append(named[path].register_forward_hook(make_hook(layer)))
        cuda = device.startswith("cuda")
        workers = 0 if not cuda else min(8, max(1, (os.cpu_count() or 2) - 1))
        loader = torch.utils.data.DataLoader(
            _ImageDataset(stimuli, self.preprocessing.transform()), batch_size=batch_size, shuffle=False,
            num_workers=workers, pin_memory=cuda, persistent_workers=False)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and precision == "bf16")
        try:
            start = 0
            with torch.inference_mode(), autocast:
                for batch in loader:
                    batch = batch.to(device, non_blocking=True)
                    if cuda:
                        batch = batch.contiguous(memory_format=torch.channels_last)
                    outputs.clear()
                    try:
                        network(batch)
                    except _StopForward:
                        pass
                    host = {name: _to_host(outputs[name]) for name in layers}
                    yield ActivationBatch(start, {name: t.numpy() for name, t in host.items()})
                    start += len(batch)
        finally:
            for handle in handles:
                handle.remove()


def _to_host(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.float()
    if tensor.is_cuda:
        out = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        out.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream(tensor.device).synchronize()
        return out
    return tensor.contiguous()


def extract_all(model, stimuli: StimulusSet, layers: Sequence[str], **kwargs) -> dict[str, np.ndarray]:
    """Concatenate a model's batches into one array per layer (no cache; small sets and tests)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for batch in model.iter_activations(stimuli, layers, **kwargs):
        for name in layers:
            parts[name].append(batch.features[name])
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}
