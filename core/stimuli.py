"""Stimulus sets: ordered stimuli with ids, identified by their content, not only their name.

The content hash covers every stimulus's bytes (file bytes, pixel arrays or UTF-8 text) and its id, so a
re-encoded image, a resized copy or a re-ordered set gets a different hash and never hits a stale cache entry.
"""
from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .interfaces import MODALITIES


class StimulusSet:
    """Ordered stimuli of one modality.

    ``items`` holds, per stimulus, a file path (images, videos), an ``(H, W, 3)`` uint8 array (images held in
    memory, e.g. from a .mat file) or a string (text). ``metadata`` holds per-stimulus columns such as category.
    """

    def __init__(self, identifier: str, modality: str, stimulus_ids: Sequence[str], items: Sequence[Any],
                 metadata: Mapping[str, Sequence[Any]] | None = None):
        if modality not in MODALITIES:
            raise InputError(f"stimulus set {identifier!r}: modality {modality!r} is not one of {MODALITIES}")
        ids = tuple(str(s) for s in stimulus_ids)
        if len(ids) != len(items):
            raise InputError(f"stimulus set {identifier!r}: {len(ids)} ids but {len(items)} stimuli")
        if len(set(ids)) != len(ids):
            dupes = sorted({s for s in ids if ids.count(s) > 1})[:5]
            raise InputError(f"stimulus set {identifier!r}: stimulus ids must be unique, duplicated: {dupes}")
        if not ids:
            raise InputError(f"stimulus set {identifier!r} is empty")
        metadata = {k: tuple(v) for k, v in (metadata or {}).items()}
        for key, column in metadata.items():
            if len(column) != len(ids):
                raise InputError(f"stimulus set {identifier!r}: metadata column {key!r} has {len(column)} "
                                 f"values for {len(ids)} stimuli")
        self.identifier = identifier
        self.modality = modality
        self.stimulus_ids = ids
        self.items = tuple(items)
        self.metadata = metadata

    # --- constructors ------------------------------------------------------------------------------------
    @classmethod
    def from_files(cls, identifier: str, paths: Sequence[str | os.PathLike], ids: Sequence[str] | None = None,
                   modality: str = "image", metadata: Mapping[str, Sequence[Any]] | None = None) -> StimulusSet:
        paths = [Path(p) for p in paths]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise InputError(f"stimulus set {identifier!r}: {len(missing)} stimulus file(s) do not exist, "
                             f"e.g. {missing[:3]}")
        ids = ids if ids is not None else [p.stem for p in paths]
        return cls(identifier, modality, ids, paths, metadata)

    @classmethod
    def from_arrays(cls, identifier: str, arrays: Sequence[np.ndarray], ids: Sequence[str],
                    metadata: Mapping[str, Sequence[Any]] | None = None) -> StimulusSet:
        checked = []
        for sid, array in zip(ids, arrays, strict=True):
            array = np.asarray(array)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise InputError(f"stimulus set {identifier!r}: image {sid!r} must be (H, W, 3) uint8, "
                                 f"got {array.shape} {array.dtype}")
            checked.append(np.ascontiguousarray(array))
        return cls(identifier, "image", ids, checked, metadata)

    @classmethod
    def from_texts(cls, identifier: str, texts: Sequence[str], ids: Sequence[str] | None = None,
                   metadata: Mapping[str, Sequence[Any]] | None = None) -> StimulusSet:
        texts = [str(t) for t in texts]
        ids = ids if ids is not None else [f"text{i:05d}" for i in range(len(texts))]
        return cls(identifier, "text", ids, texts, metadata)

    # --- access ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.stimulus_ids)

    def __repr__(self) -> str:
        return (f"StimulusSet({self.identifier!r}, {self.modality}, n={len(self)}, "
                f"content_hash={self.content_hash[:12]})")

    def load(self, index: int) -> Any:
        """The stimulus as a model consumes it: a PIL RGB image, a str, or a video file path."""
        item = self.items[index]
        if self.modality == "image":
            from PIL import Image

            if isinstance(item, np.ndarray):
                return Image.fromarray(item, mode="RGB")
            with Image.open(item) as image:
                return image.convert("RGB")
        return item

    @functools.cached_property
    def content_hash(self) -> str:
        digest = hashlib.sha256(f"{self.modality}\n".encode())
        for sid, item in zip(self.stimulus_ids, self.items):
            digest.update(sid.encode() + b"\0")
            digest.update(_item_digest(item))
        return digest.hexdigest()

    def subset(self, indices: Sequence[int], identifier: str | None = None) -> StimulusSet:
        indices = [int(i) for i in indices]
        return StimulusSet(identifier or f"{self.identifier}[subset]", self.modality,
                           [self.stimulus_ids[i] for i in indices], [self.items[i] for i in indices],
                           {k: [v[i] for i in indices] for k, v in self.metadata.items()})

    def indices_of(self, ids: Sequence[str], what: str = "data") -> np.ndarray:
        """Positions of ``ids`` in this set; a clear error names ids that are missing."""
        lookup = {sid: i for i, sid in enumerate(self.stimulus_ids)}
        missing = [str(s) for s in ids if str(s) not in lookup]
        if missing:
            raise InputError(f"{what} refers to {len(missing)} stimulus id(s) not in stimulus set "
                             f"{self.identifier!r}, e.g. {missing[:5]}; the set's ids look like "
                             f"{list(self.stimulus_ids[:3])}")
        return np.array([lookup[str(s)] for s in ids], dtype=np.int64)


def _item_digest(item: Any) -> bytes:
    if isinstance(item, np.ndarray):
        header = f"{item.dtype.str}{item.shape}".encode()
        return hashlib.sha256(header + item.tobytes()).digest()
    if isinstance(item, str):
        return hashlib.sha256(b"text\0" + item.encode("utf-8")).digest()
    if isinstance(item, Path):
        from .data import _memo

        return bytes.fromhex(_memo.sha256(item))
    raise TypeError(f"cannot hash stimulus of type {type(item).__name__}")


def check_same_stimuli(expected: Sequence[str], actual: Sequence[str], what: str) -> None:
    """Raise a clear error when two stimulus orders differ (the classic silent-misalignment bug)."""
    expected, actual = [str(s) for s in expected], [str(s) for s in actual]
    if expected == actual:
        return
    if len(expected) != len(actual):
        raise InputError(f"{what}: {len(actual)} stimuli where {len(expected)} were expected")
    first = next(i for i, (a, b) in enumerate(zip(expected, actual)) if a != b)
    same_set = set(expected) == set(actual)
    raise InputError(f"{what}: stimulus ids differ from the expected order at position {first} "
                     f"({actual[first]!r} instead of {expected[first]!r})"
                     + ("; the ids are a permutation: align them by id before comparing" if same_set else ""))
