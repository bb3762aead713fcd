"""Cichy et al. 2014 (92 images) and Algonauts 2019 (78 images): 15 subjects' EVC and IT fMRI RDMs.

Files (Net2Brain-App copies, ``cichy92_algonauts2019_78``): ``<set>/<set>_fmri_{EVC,IT}_RDMs.gzip`` is a gzip JSON
``{"data": flat C-order list, "shape": [15, N, N]}``; stimulus index k is ``<set>/images/<set>_{k+1:05d}.jpg``.
The 92 images are Kriegeskorte's objects in the same order (white background), so their categories come from the
Kriegeskorte 2008 supplement. The 78-image categories are the Net2Brain-App's grouping (``AvailableData.swift``).
The 78-image "T2" RDMs are not used: they are uncorrelated with the others and undocumented (see the README).
"""
from __future__ import annotations

import functools
import gzip
import json
import numpy as np

from cortexbench.data import resolve
from cortexbench.errors import DataError
from cortexbench.stimuli import StimulusSet

from . import CICHY_ALGONAUTS as DATASET
from .rdm_benchmark import BrainRDMs

SETS = {"92images": 92, "78images": 78}
REGIONS = ("EVC", "IT")
N_SUBJECTS = 15
#: Net2Brain-App's grouping of the 78 images (1-based, inclusive ranges).
GROUPS_78 = (("animals", 1, 13), ("plants", 14, 21), ("food", 22, 29), ("office", 30, 32), ("rooms", 33, 38),
             ("city", 39, 45), ("landscape", 46, 50), ("sports", 51, 61), ("faces", 62, 78))


def stimulus_ids(image_set: str) -> tuple[str, ...]:
    return tuple(f"{image_set}_{k:02d}" for k in range(1, SETS[image_set] + 1))


def categories(image_set: str) -> list[str]:
    if image_set == "92images":
        from . import kriegeskorte2008

        return list(kriegeskorte2008.stimuli().metadata["category"])
    out = []
    for name, first, last in GROUPS_78:
        out.extend([name] * (last - first + 1))
    return out


@functools.lru_cache(maxsize=2)
def stimuli(image_set: str) -> StimulusSet:
    """The set's images (JPEG files) in RDM order, with a ``category`` column for stratified splits."""
    paths = [resolve(DATASET, f"{image_set}/images/{image_set}_{k:05d}.jpg") for k in range(1, SETS[image_set] + 1)]
    return StimulusSet.from_files(f"cichy_{image_set}", paths, ids=stimulus_ids(image_set),
                                  metadata={"category": categories(image_set)})


def rdms(image_set: str, region: str) -> BrainRDMs:
    name = f"{image_set}/{image_set}_fmri_{region}_RDMs.gzip"
    path = resolve(DATASET, name)
    try:
        with gzip.open(path, "rt") as handle:
            payload = json.load(handle)
        values = np.asarray(payload["data"], dtype=np.float64).reshape(payload["shape"])
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{path}: expected a gzip JSON object with 'data' and 'shape' ({type(err).__name__}: "
                        f"{err})") from None
    n = SETS[image_set]
    if values.shape != (N_SUBJECTS, n, n):
        raise DataError(f"{path}: RDMs of shape {values.shape}, expected ({N_SUBJECTS}, {n}, {n})")
    subjects = tuple(f"subj{s:02d}" for s in range(1, N_SUBJECTS + 1))
    return BrainRDMs(region, values, subjects, stimulus_ids(image_set), source=str(path))


def all_regions(image_set: str) -> tuple[BrainRDMs, ...]:
    """EVC and IT of the same 15 subjects (the multi-region benchmarks ``cichy2014.rsa``, ``algonauts2019.rsa``)."""
    return tuple(rdms(image_set, region) for region in REGIONS)
