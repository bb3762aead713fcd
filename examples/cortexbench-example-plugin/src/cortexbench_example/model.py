"""A model that needs no deep-learning library: it implements cortexbench's Model protocol directly."""
from __future__ import annotations

import numpy as np

from cortexbench.interfaces import ActivationBatch, make_layers

SIZES = {"pixels": 32, "coarse": 8}


class PixelModel:
    identifier = "example/pixels"
    modalities = frozenset({"image"})
    layers = make_layers(list(SIZES), layouts="NC")
    region_layer_map = {"V1": ("pixels",)}

    def fingerprint(self):
        return {"model": self.identifier, "weights": "none", "preprocessing": "grey, bilinear resize", "version": "1"}

    def iter_activations(self, stimuli, layers, *, pooling="avg", device="cpu", batch_size=64, precision="fp32"):
        for start in range(0, len(stimuli), batch_size):
            images = [stimuli.load(i).convert("L") for i in range(start, min(start + batch_size, len(stimuli)))]
            yield ActivationBatch(start, {
                name: np.stack([np.asarray(im.resize((SIZES[name],) * 2), dtype=np.float32).ravel() / 255.0
                                for im in images]) for name in layers})
