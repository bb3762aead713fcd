"""Content-keyed activation cache and the cached candidate that benchmarks talk to.

A cache entry is one ``.npy`` file per (model fingerprint, layer, pooling, precision, stimulus-set content hash,
cortexbench version). Extraction streams batches straight into a memory-mapped ``.npy`` under a temporary
name and renames it into place when complete, so host memory stays bounded by one batch, readers never see a
partial file, and a changed weight file, preprocessing or stimulus never returns a stale entry.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__, config, progress
from .errors import InputError
from .interfaces import POOLINGS, Layer, Model
from .stimuli import StimulusSet


#: Bump whenever extraction code changes what a cached array holds (preprocessing, pooling, hooks), so that no
#: cache written by older code is ever read. 2: timm's floor rule for the resize before the centre crop.
CACHE_VERSION = 2


class ActivationStore:
    """Pooled activations on disk, keyed by content. ``root=None`` uses ``$CORTEXBENCH_HOME/activations``."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else config.activations_dir()

    @staticmethod
    def key(model: Model, layer: str, pooling: str, precision: str, stimuli: StimulusSet) -> str:
        described = next((dataclasses.asdict(l) for l in model.layers if l.name == layer), {"name": layer})
        payload = {
            "cache_version": CACHE_VERSION,
            "model": model.identifier,
            "fingerprint": dict(model.fingerprint()),
            "layer": described,  # name, depth, layout: a layer that changes meaning changes the key
            "pooling": pooling,
            "precision": precision,
            "stimuli": stimuli.content_hash,
            "cortexbench": __version__,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def load(self, key: str) -> np.ndarray | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError):  # truncated by a crash outside our atomic rename: recompute
            return None

    def open_writer(self, key: str, shape: tuple[int, int]) -> _PendingArray:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return _PendingArray(path, shape)


class _PendingArray:
    """A memory-mapped ``.npy`` written under a temporary name and renamed into place on commit."""

    def __init__(self, final: Path, shape: tuple[int, int]):
        self.final = final
        self.temp = final.with_name(f".{final.stem}.{uuid.uuid4().hex}.tmp.npy")
        self.array = np.lib.format.open_memmap(self.temp, mode="w+", dtype=np.float32, shape=shape)

    def commit(self) -> None:
        self.array.flush()
        del self.array
        os.replace(self.temp, self.final)

    def discard(self) -> None:
        if hasattr(self, "array"):
            del self.array
        self.temp.unlink(missing_ok=True)


class CachedCandidate:
    """A model as benchmarks see it: cached, device-placed, streaming extraction (see ``interfaces.Candidate``)."""

    def __init__(self, model: Model, store: ActivationStore | None = None, *, device: str = "cpu",
                 batch_size: int = 64, precision: str = "fp32"):
        self.model = model
        self._scratch = None if store is not None else tempfile.TemporaryDirectory(prefix="cortexbench-acts-")
        self.store = store if store is not None else ActivationStore(self._scratch.name)
        self.device, self.batch_size, self.precision = device, batch_size, precision
        self.cache_keys: dict[str, str] = {}  # "layer|pooling|stimuli" -> key, for provenance
        self.cache_hits = 0
        self.cache_misses = 0

    def close(self) -> None:
        """Delete the scratch store of an uncached run (``--no-cache``); a shared store is left alone."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    @property
    def identifier(self) -> str:
        return self.model.identifier

    @property
    def modalities(self) -> frozenset[str]:
        return self.model.modalities

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(self.model.layers)

    @property
    def region_layer_map(self) -> Mapping[str, tuple[str, ...]]:
        return self.model.region_layer_map

    def activations(self, stimuli: StimulusSet, layers: Sequence[str] | None = None,
                    pooling: str = "avg") -> dict[str, xr.DataArray]:
        if stimuli.modality not in self.model.modalities:
            raise InputError(f"model {self.identifier!r} accepts {sorted(self.model.modalities)} stimuli; "
                             f"stimulus set {stimuli.identifier!r} is {stimuli.modality}")
        if pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        by_name = {layer.name: layer for layer in self.model.layers}
        layers = list(by_name) if layers is None else list(layers)
        unknown = [name for name in layers if name not in by_name]
        if unknown:
            raise InputError(f"model {self.identifier!r} has no layer(s) {unknown}; it has {list(by_name)}")
        keys = {name: self.store.key(self.model, name, pooling, self.precision, stimuli) for name in layers}
        arrays = {name: self.store.load(key) for name, key in keys.items()}
        missing = [name for name, array in arrays.items() if array is None]
        self.cache_hits += len(layers) - len(missing)
        self.cache_misses += len(missing)
        if missing:
            self._extract(stimuli, missing, pooling, keys)
            arrays.update({name: self.store.load(keys[name]) for name in missing})
        for name in layers:
            self.cache_keys[f"{name}|{pooling}|{stimuli.content_hash[:16]}"] = keys[name]
        return {name: _as_dataarray(arrays[name], stimuli, by_name[name], self.identifier) for name in layers}

    def _extract(self, stimuli: StimulusSet, layers: list[str], pooling: str, keys: dict[str, str]) -> None:
        writers: dict[str, _PendingArray] = {}
        bar = progress.bar(total=len(stimuli), unit="stim",
                           desc=f"{self.identifier}: {len(layers)} layer(s) of {stimuli.identifier}")
        done = 0
        try:
            for batch in self.model.iter_activations(stimuli, layers, pooling=pooling, device=self.device,
                                                     batch_size=self.batch_size, precision=self.precision):
                rows = None
                for name in layers:
                    values = np.asarray(batch.features[name], dtype=np.float32)
                    values = values.reshape(len(values), -1)
                    rows = len(values)
                    if name not in writers:
                        writers[name] = self.store.open_writer(keys[name], (len(stimuli), values.shape[1]))
                    writers[name].array[batch.start: batch.start + rows] = values
                done += rows or 0
                bar.update(rows or 0)
            if done != len(stimuli):
                raise InputError(f"model {self.identifier!r} yielded {done} activations for {len(stimuli)} stimuli")
            for writer in writers.values():
                writer.commit()
        except BaseException:
            for writer in writers.values():
                writer.discard()
            raise
        finally:
            bar.close()


def _as_dataarray(array: np.ndarray, stimuli: StimulusSet, layer: Layer, model: str) -> xr.DataArray:
    return xr.DataArray(
        array, dims=("stimulus", "feature"),
        coords={"stimulus": list(stimuli.stimulus_ids)},
        attrs={"model": model, "layer": layer.name, "depth": layer.depth, "depth_bin": layer.depth_bin},
    )
