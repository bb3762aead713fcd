"""One subject's repeat-averaged responses, laid out so that every region is a contiguous block of columns.

Both dataset layouts are converted into this one form, so the benchmark never deals with volumes, hemispheres or
sessions. Rows ``[0, n_model)`` are the images models are scored on (the subject's non-shared images); the rows after
them are the subject's shared images (the cross-subject ceiling's stimuli). A region's view of the model rows is a
plain slice of a memory-mapped array, so handing 180 regions to the CKA grid costs no host memory until it reads them.

Large conversions are cached on disk under ``$CORTEXBENCH_HOME/nsd_cka/<key>/`` (``responses.npy`` + ``index.json``),
keyed on the source files' sizes and modification times and the conversion options; a partial cache entry is never
visible (it is written in a temporary folder and renamed).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cortexbench import config
from cortexbench.errors import DataError, InputError

#: Bumped when the conversion changes, so old cache entries are not reused.
CACHE_VERSION = "1"
ARRAY_FILE, INDEX_FILE = "responses.npy", "index.json"


@dataclass
class RegionResponses:
    """Repeat-averaged responses ``array`` ``(image, column)``; region ``k`` is ``array[:, bounds[k, 0]:bounds[k, 1]]``."""

    subject: str
    array: np.ndarray
    stimulus_ids: tuple[str, ...]
    n_model: int
    regions: tuple[str, ...]
    bounds: np.ndarray
    source: str
    nsd_ids: np.ndarray | None = None
    repeats: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.bounds = np.asarray(self.bounds, dtype=np.int64).reshape(-1, 2)
        n_rows, n_cols = self.array.shape
        if len(self.stimulus_ids) != n_rows:
            raise DataError(f"{self.source}: {n_rows} response rows but {len(self.stimulus_ids)} stimulus ids")
        if not 0 <= self.n_model <= n_rows:
            raise DataError(f"{self.source}: n_model={self.n_model} outside 0..{n_rows}")
        if len(self.regions) != len(self.bounds) or len(set(self.regions)) != len(self.regions):
            raise DataError(f"{self.source}: region names must be unique and match the column ranges")
        if len(self.bounds) and ((self.bounds[:, 0] >= self.bounds[:, 1]).any() or self.bounds.max() > n_cols
                                 or self.bounds.min() < 0):
            raise DataError(f"{self.source}: every region needs at least one column inside 0..{n_cols}")

    @property
    def n_columns(self) -> dict[str, int]:
        """Voxels (or vertices) per region."""
        return {name: int(b - a) for name, (a, b) in zip(self.regions, self.bounds)}

    @property
    def model_ids(self) -> tuple[str, ...]:
        return self.stimulus_ids[: self.n_model]

    @property
    def shared_ids(self) -> tuple[str, ...]:
        return self.stimulus_ids[self.n_model:]

    def nsd_ids_of(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """0-based 73k ids of the rows ``ids`` (default: the model rows)."""
        if self.nsd_ids is None:
            raise DataError(f"{self.source}: the responses record no NSD image ids")
        if ids is None:
            return np.asarray(self.nsd_ids[: self.n_model])
        lookup = dict(zip(self.stimulus_ids, np.asarray(self.nsd_ids).tolist()))
        missing = [i for i in ids if i not in lookup]
        if missing:
            raise InputError(f"{self.source}: image(s) {missing[:5]} are not among subject {self.subject}'s rows")
        return np.array([lookup[i] for i in ids], dtype=np.int64)

    def index_of(self, region: str) -> int:
        try:
            return self.regions.index(region)
        except ValueError:
            raise InputError(f"{self.source}: no region {region!r}; it has {len(self.regions)} regions, e.g. "
                             f"{list(self.regions[:8])}") from None

    def model_view(self, region: str) -> np.ndarray:
        """``(n_model, n_columns)`` view of the model rows (no copy for memory-mapped arrays)."""
        a, b = self.bounds[self.index_of(region)]
        return self.array[: self.n_model, a:b]

    def shared_view(self, region: str, ids: Sequence[str]) -> np.ndarray:
        """Rows of the shared images ``ids`` (in that order) of one region, as an array."""
        lookup = {sid: self.n_model + i for i, sid in enumerate(self.shared_ids)}
        missing = [s for s in ids if s not in lookup]
        if missing:
            raise InputError(f"{self.source}: shared image(s) {missing[:5]} not among subject {self.subject}'s "
                             "shared images")
        a, b = self.bounds[self.index_of(region)]
        rows = np.array([lookup[s] for s in ids], dtype=np.int64)
        return np.asarray(self.array[rows, a:b])


def cache_key(payload: Mapping[str, Any]) -> str:
    text = json.dumps({**payload, "cache_version": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def file_stamp(path: Path) -> dict[str, Any]:
    """Cheap identity of a (possibly huge) source file: path, size and modification time."""
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cache_root() -> Path:
    return config.home() / "nsd_cka"


def load_cached(key: str) -> RegionResponses | None:
    folder = cache_root() / key
    if not (folder / INDEX_FILE).is_file():
        return None
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
        array = np.load(folder / ARRAY_FILE, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    return RegionResponses(
        subject=index["subject"], array=array, stimulus_ids=tuple(index["stimulus_ids"]), n_model=index["n_model"],
        regions=tuple(index["regions"]), bounds=np.array(index["bounds"], dtype=np.int64), source=index["source"],
        nsd_ids=None if index.get("nsd_ids") is None else np.array(index["nsd_ids"], dtype=np.int64),
        repeats=None if index.get("repeats") is None else np.array(index["repeats"], dtype=np.int64))


def build_cached(key: str, build: Callable[[Callable[[tuple[int, int]], np.ndarray]], RegionResponses]
                 ) -> RegionResponses:
    """Return the cached conversion ``key``, or run ``build(allocate)`` and cache its result.

    ``build`` receives ``allocate(shape)``, which returns a writable float32 memory-mapped array in the temporary
    cache folder; it fills the array and returns a :class:`RegionResponses` whose ``array`` is that memmap.
    """
    cached = load_cached(key)
    if cached is not None:
        return cached
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{key}.{uuid.uuid4().hex[:8]}.", dir=root))
    try:
        def allocate(shape: tuple[int, int]) -> np.ndarray:
            return np.lib.format.open_memmap(temp / ARRAY_FILE, mode="w+", dtype=np.float32,
                                             shape=tuple(int(s) for s in shape))

        result = build(allocate)
        array = result.array
        if isinstance(array, np.memmap):
            array.flush()
        else:
            np.save(temp / ARRAY_FILE, np.asarray(array, dtype=np.float32))
        index = {"subject": result.subject, "stimulus_ids": list(result.stimulus_ids), "n_model": result.n_model,
                 "regions": list(result.regions), "bounds": result.bounds.tolist(), "source": result.source,
                 "nsd_ids": None if result.nsd_ids is None else result.nsd_ids.tolist(),
                 "repeats": None if result.repeats is None else result.repeats.tolist()}
        (temp / INDEX_FILE).write_text(json.dumps(index))
        del array, result  # close the memmap before the folder is renamed
        try:
            os.replace(temp, root / key)
        except OSError:  # another process finished the same entry first; theirs is equivalent
            shutil.rmtree(temp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    cached = load_cached(key)
    if cached is None:
        raise DataError(f"could not read back the cached NSD responses in {root / key}")
    return cached


def region_order(labels: np.ndarray, names: Mapping[int, str], wanted: Sequence[str] | None, what: str
                 ) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Column order that makes each labelled region contiguous.

    ``labels`` holds one integer label per source column (0 = none). Returns the source column indices in region
    order, the region names and their ``(start, stop)`` bounds in the reordered columns. ``wanted`` restricts and
    orders the regions; a wanted region without columns is an error.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    present = {int(k) for k in np.unique(labels) if k != 0 and int(k) in names}
    by_name = {names[k]: k for k in present}
    if wanted is None:
        chosen = [names[k] for k in sorted(present)]
    else:
        missing = [w for w in wanted if w not in by_name]
        if missing:
            raise InputError(f"{what}: region(s) {missing} have no voxels/vertices; present are "
                             f"{sorted(by_name)[:20]}{' ...' if len(by_name) > 20 else ''}")
        chosen = list(wanted)
    columns, bounds, start = [], [], 0
    for name in chosen:
        idx = np.flatnonzero(labels == by_name[name])
        columns.append(idx)
        bounds.append((start, start + idx.size))
        start += idx.size
    order = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
    return order, tuple(chosen), np.array(bounds, dtype=np.int64).reshape(-1, 2)
