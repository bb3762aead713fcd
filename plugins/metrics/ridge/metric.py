"""The registered ridge encoding metric: every source predicts every target with :func:`functional.ridge_cv`."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from cortexbench.device import resolve_device
from cortexbench.errors import InputError
from cortexbench.interfaces import MetricContract
from cortexbench.plugins.metrics.arrays import pairs

from . import VERSION
from . import functional as F

SCORES = ("r2", "r")


class RidgeEncoding:
    """Cross-validated ridge from ``source`` ``(..., stimulus, feature)`` to ``target`` ``(..., stimulus, neuroid)``.

    If the ``stimulus`` dimension carries a ``split`` coordinate with values ``"train"``/``"test"``, the model is
    fitted on the train stimuli (5-fold CV score) and the fold models are scored on the test stimuli; the result then
    has a ``split`` dimension. Otherwise only the cross-validated score is returned. Scores are per-neuroid R^2 (or
    Pearson r with ``score="r"``) averaged over neuroids (NaN-aware), or kept per neuroid with ``per_neuroid=True``.
    All target items (e.g. regions x subjects) are fitted in one call with one alpha per item (``groups``), so the
    source's decomposition is shared.
    """

    identifier = "ridge"
    version = VERSION

    def __init__(self, *, alphas: Sequence[float] = F.DEFAULT_ALPHAS, n_splits: int = 5, shuffle: bool = True,
                 random_state: int | None = 0, alpha_per_target: bool = False, score: str = "r2",
                 per_neuroid: bool = False, device: str = "cpu", n_targets_batch: int | None = None):
        if score not in SCORES:
            raise InputError(f"ridge: score must be one of {SCORES}, got {score!r}")
        self.alphas = F._alphas(alphas)
        self.n_splits, self.shuffle, self.random_state = n_splits, shuffle, random_state
        self.alpha_per_target, self.score, self.per_neuroid = alpha_per_target, score, per_neuroid
        self.device, self.n_targets_batch = resolve_device(device), n_targets_batch
        self.contract = MetricContract(
            source_dims=("stimulus", "feature"), target_dims=("stimulus", "neuroid"), min_stimuli=2 * n_splits,
            description="features and responses of the same stimuli; optional 'split' (train/test) coordinate on "
                        "the stimulus dimension; extra leading dimensions are batched")

    @property
    def config(self) -> dict:
        return {"alphas": [float(a) for a in self.alphas], "n_splits": self.n_splits, "shuffle": self.shuffle,
                "random_state": self.random_state, "alpha_per_target": self.alpha_per_target, "score": self.score}

    def __call__(self, source: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
        batch = pairs(self.identifier, self.contract, source, target)
        train, test = _split(source, target)
        n_items, width = batch.targets.shape[0], batch.targets.shape[2]
        if self.per_neuroid and n_items > 1:
            raise InputError("ridge: per_neuroid=True needs a target without leading dimensions (neuroid counts may "
                             "differ between items); loop over them or average per neuroid yourself")
        # every target item side by side: (n, B * d') with one alpha group per item
        responses = batch.targets.transpose(1, 0, 2).reshape(batch.targets.shape[1], n_items * width)
        groups = np.repeat(np.arange(n_items), width)
        splits = ("train", "test") if test is not None else ("train",)
        per_target = np.empty((batch.sources.shape[0], len(splits), n_items * width))
        for a, features in enumerate(batch.sources):
            result = F.ridge_cv(features[train], responses[train],
                                features[test] if test is not None else None,
                                responses[test] if test is not None else None,
                                alphas=self.alphas, n_splits=self.n_splits, shuffle=self.shuffle,
                                random_state=self.random_state, alpha_per_target=self.alpha_per_target,
                                device=self.device, n_targets_batch=self.n_targets_batch, groups=groups)
            per_target[a, 0] = result.train_r2 if self.score == "r2" else result.train_r
            if test is not None:
                per_target[a, 1] = result.test_r2 if self.score == "r2" else result.test_r
        per_target = per_target.reshape(per_target.shape[0], len(splits), n_items, width)
        attrs = {k: str(v) for k, v in self.config.items()}
        coords = {"split": list(splits)}
        if self.per_neuroid:
            values = per_target.transpose(0, 2, 1, 3)                                      # (A, 1, split, neuroid)
            if "neuroid" in target.coords:
                coords["neuroid"] = target["neuroid"].values
            return batch.label(values, self.identifier, ("split", "neuroid"), coords, attrs)
        with np.errstate(all="ignore"):
            values = np.nanmean(per_target, axis=-1).transpose(0, 2, 1)                      # (A, B, split)
        return batch.label(values, self.identifier, ("split",), coords, attrs)


def _split(source: xr.DataArray, target: xr.DataArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Train and test masks from a ``split`` coordinate on the stimulus dimension (all train when there is none)."""
    labels = [a["split"].values if "split" in a.coords and a["split"].dims == ("stimulus",) else None
              for a in (source, target)]
    if labels[0] is None and labels[1] is None:
        return np.ones(source.sizes["stimulus"], dtype=bool), None
    if labels[0] is None or labels[1] is None or not np.array_equal(labels[0], labels[1]):
        raise InputError("ridge: source and target must carry the same 'split' coordinate on 'stimulus' (or neither)")
    values = {str(v) for v in labels[0]}
    if not values <= {"train", "test"} or "train" not in values:
        raise InputError(f"ridge: the 'split' coordinate must hold 'train' and optionally 'test', got {sorted(values)}")
    train = labels[0] == "train"
    return train, (~train if "test" in values else None)
