"""The 20-image real sample: NSD subject 1's Algonauts-2023 fsaverage responses, as the Net2Brain-App ships them.

Every file is a gzip-compressed JSON array of 163842 numbers (one fsaverage hemisphere, 0-based vertex order):
``fmri/{left,right}/roi_{left,right}_all_color_map_imageNNNNN.gzip`` hold one image's responses (non-zero exactly on
the challenge vertices), ``vertices/roi_{left,right}_<family>_color_map.gzip`` hold the ROI labels (NSD's label
tables; ``all`` marks the challenge vertices). Twenty images are far too few for a scientific score: this benchmark
exists to run the whole pipeline on real responses (shapes, ROI bookkeeping, numbers), not to rank models.
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Sequence

import numpy as np

from cortexbench.data import resolve
from cortexbench.errors import DataError
from cortexbench.stimuli import StimulusSet

from . import regions as region_tables
from .data import ALGONAUTS2023_SAMPLE as DATASET
from .responses import RegionResponses

N_IMAGES = 20
N_VERTICES = 163842
SUBJECT = "subj01"
#: The app's family file names -> the NSD/Algonauts ROI family.
FAMILY_FILES = {"visual": "prf-visualrois", "body": "floc-bodies", "face": "floc-faces", "place": "floc-places",
                "word": "floc-words", "anatomical": "streams"}
SIDES = (("left", "lh"), ("right", "rh"))


def read_map(path: str) -> np.ndarray:
    """One gzip JSON fsaverage map as float32 (the responses round-trip to float32 exactly)."""
    local = resolve(DATASET, path)
    try:
        with gzip.open(local, "rt") as handle:
            values = np.asarray(json.load(handle), dtype=np.float32)
    except (OSError, ValueError) as err:
        raise DataError(f"{local}: expected a gzip-compressed JSON array ({type(err).__name__}: {err})") from None
    if values.shape != (N_VERTICES,):
        raise DataError(f"{local}: expected {N_VERTICES} fsaverage values, got shape {values.shape}")
    return values


def image_id(k: int) -> str:
    return f"image{k:05d}"


class AlgonautsSample:
    """Loader of the declared sample (resolved from ``$CORTEXBENCH_MIRRORS`` or the cache)."""

    layout = "algonauts2023-sample"
    subjects = (SUBJECT,)

    def __init__(self, regions=None, benchmark: str = "nsd.algonauts2023-sample.rbf-cka"):
        self.wanted_regions = list(regions) if regions is not None else None
        self.benchmark = benchmark

    def vertices(self) -> dict[str, np.ndarray]:
        """0-based fsaverage indices of the challenge vertices per hemisphere (the ``all`` label map)."""
        return {hemi: np.flatnonzero(read_map(f"vertices/roi_{side}_all_color_map.gzip"))
                for side, hemi in SIDES}

    def responses(self, subject: str = SUBJECT) -> RegionResponses:
        if subject != SUBJECT:
            raise DataError(f"{self.benchmark}: the sample holds only {SUBJECT}, not {subject}")
        vertices = self.vertices()
        full = np.stack([np.concatenate([read_map(f"fmri/{side}/roi_{side}_all_color_map_{image_id(k)}.gzip")
                                         [vertices[hemi]] for side, hemi in SIDES])
                         for k in range(1, N_IMAGES + 1)])
        blocks, names, bounds, start = [], [], [], 0
        for family_file, family in FAMILY_FILES.items():
            labels = np.concatenate([read_map(f"vertices/roi_{side}_{family_file}_color_map.gzip")[vertices[hemi]]
                                     for side, hemi in SIDES])
            table = region_tables.ALGONAUTS_FAMILIES[family]
            for label, name in table.items():
                columns = np.flatnonzero(np.rint(labels) == label)
                if columns.size == 0 or (self.wanted_regions is not None and name not in self.wanted_regions):
                    continue
                blocks.append(full[:, columns])
                names.append(name)
                bounds.append((start, start + columns.size))
                start += columns.size
        if self.wanted_regions is not None:
            missing = [r for r in self.wanted_regions if r not in names]
            if missing:
                raise DataError(f"{self.benchmark}: region(s) {missing} have no challenge vertices in the sample")
        return RegionResponses(subject=SUBJECT, array=np.concatenate(blocks, axis=1),
                               stimulus_ids=tuple(image_id(k) for k in range(1, N_IMAGES + 1)), n_model=N_IMAGES,
                               regions=tuple(names), bounds=np.array(bounds),
                               source="Algonauts-2023 subj01 20-image sample (fsaverage challenge vertices)")

    def images(self, subject: str, responses: RegionResponses, identifier: str,
               ids: Sequence[str] | None = None) -> StimulusSet:
        ids = responses.model_ids if ids is None else tuple(ids)
        paths = [resolve(DATASET, f"training_images/{sid}.png") for sid in ids]
        return StimulusSet.from_files(identifier, paths, ids=list(ids))

    def captions(self, subject: str, responses: RegionResponses, identifier: str,
                 ids: Sequence[str] | None = None) -> StimulusSet:
        raise DataError(f"{self.benchmark}: the sample's images have no recorded NSD ids, so no COCO captions; "
                        "score image models on it")
