"""Shared pieces of the NSD CKA tests: real shared1000 images, a planted model layer, and a numpy reference CKA."""
from __future__ import annotations

import numpy as np
import pytest

MODEL = "timm/resnet18.untrained-seed0"
#: The layer whose pooled features generate the fixture responses (depth bin 0 of resnet18's 6 layers).
PLANTED = "act1"
N_SHARED, N_PER_SUBJECT = 12, 30


def numpy_rbf_cka(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Shen et al.'s RBF CKA written from its definition in numpy float64 (independent of the torch grid)."""
    def kernel(a):
        a = np.asarray(a, dtype=np.float64)
        a = (a - a.mean(0)) / (a.std(0, ddof=1) + 1e-8)
        sq = (a * a).sum(1)
        d = np.maximum(sq[:, None] + sq[None, :] - 2 * a @ a.T, 0.0)
        np.fill_diagonal(d, 0.0)
        return np.exp(-d / (2 * sigma ** 2))

    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l = kernel(x), kernel(y)
    hsic = lambda p, q: np.trace(p @ h @ q @ h)  # noqa: E731
    return float(hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l)))


@pytest.fixture(scope="session")
def reference_cka():
    return numpy_rbf_cka


@pytest.fixture(scope="session")
def planted(shared_data):
    """72 real shared1000 images (73k id -> pixels) and the planted layer's pooled features of each."""
    from PIL import Image

    from cortexbench.extraction import extract_all
    from cortexbench.plugin_manager import get_plugin_manager
    from cortexbench.plugins.benchmarks.nsd_cka import data
    from cortexbench.stimuli import StimulusSet

    ids = [int(i) for i in data.shared1000_ids()[: N_SHARED + 2 * N_PER_SUBJECT]]
    images = {i: np.asarray(Image.open(data.shared1000_image(i)).convert("RGB")) for i in ids}
    model = get_plugin_manager().create_model(MODEL)
    stimuli = StimulusSet.from_arrays("planted", [images[i] for i in ids], [str(i) for i in ids])
    features = extract_all(model, stimuli, [PLANTED], pooling="avg")[PLANTED]
    bins = {layer.name: layer.depth_bin for layer in model.layers}
    return {"ids": ids, "images": images, "signal": dict(zip(ids, features)), "bin": bins[PLANTED], "bins": bins,
            "model": MODEL, "layer": PLANTED, "n_shared": N_SHARED, "n_per_subject": N_PER_SUBJECT}
