"""Model features for BOLD Moments: per-layer activations, flattened, sparse-random-projected (fit on train).

Video models (Höfling et al.): each clip is decoded at 4 fps to 12 frames of 256x256 (``cortexbench.video``); every
layer is kept whole per frame, averaged over time and flattened (``pooling="flatten"``), then projected by
``cortexbench.reduction.SparseRandomProjection`` to the Johnson-Lindenstrauss dimension for the number of train
stimuli at eps 0.1 (5919 for 998), at most the layer's width, seed 1234, fitted on the train stimuli only.

Caption route (text models): every clip's five GIT captions are embedded (``pooling="avg"``: token sequences have
no fixed length to flatten), the five embeddings averaged per clip, then projected the same way.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cortexbench.interfaces import Candidate
from cortexbench.stimuli import StimulusSet

from .protocol import SRP_EPS, SRP_SEED


def project(train: np.ndarray, test: np.ndarray, *, eps: float = SRP_EPS, seed: int = SRP_SEED,
            device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Sparse random projection fitted on ``train`` to min(JL dimension, width) components."""
    from cortexbench.reduction import SparseRandomProjection, johnson_lindenstrauss_min_dim

    n_components = min(johnson_lindenstrauss_min_dim(train.shape[0], eps), train.shape[1])
    srp = SparseRandomProjection(n_components=n_components, eps=eps, random_state=seed).fit(train)
    if str(device).startswith("cuda"):  # sparse @ dense on the GPU; the matrix is the same on every device
        import torch

        return tuple(srp.transform(torch.as_tensor(np.asarray(x), device=device)).float().cpu().numpy()
                     for x in (train, test))
    return np.asarray(srp.transform(train), dtype=np.float32), np.asarray(srp.transform(test), dtype=np.float32)


def layer_features(candidate: Candidate, stimuli: StimulusSet, n_train: int, layers: Sequence[str], *,
                   pooling: str, groups: int = 1, device: str = "cpu", reduce: bool = True
                   ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(layer, train, test)`` one layer at a time; the first ``n_train * groups`` stimuli are train.

    ``groups`` > 1 averages consecutive blocks of that many stimuli (the captions of one clip).
    """
    activations = candidate.activations(stimuli, list(layers), pooling=pooling)
    for name in layers:
        values = np.asarray(activations[name].values, dtype=np.float32)
        values = values.reshape(len(values), -1)
        if groups > 1:
            values = values.reshape(-1, groups, values.shape[1]).mean(1)
        train, test = values[:n_train], values[n_train:]
        if reduce:
            train, test = project(train, test, device=device)
        yield name, train, test
