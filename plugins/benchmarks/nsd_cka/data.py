"""Declared real data: the NSD shared1000 images and the 20-image Algonauts-2023 subject-1 response sample."""
from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np

from cortexbench.data import DatasetSpec, resolve
from cortexbench.errors import DataError

HERE = Path(__file__).resolve().parent
NSD_CITATION = ("Allen EJ, St-Yves G, Wu Y, et al. (2022). A massive 7T fMRI dataset to bridge cognitive neuroscience "
                "and artificial intelligence. Nature Neuroscience 25:116-126.")
ALGONAUTS2023_CITATION = ("Gifford AT, Lahner B, Saba-Sadiya S, et al. (2023). The Algonauts Project 2023 Challenge: "
                          "How the Human Brain Makes Sense of Natural Scenes. arXiv:2301.03198.")

SHARED1000 = DatasetSpec.from_manifest(
    "nsd_shared1000", HERE / "nsd_shared1000.tsv", folder="nsd/shared1000",
    description="the 1000 NSD images shown to every subject (200x200 PNG) with 0-based NSD ids, COCO ids and HED "
                "tags (MultimodalNeuroimagingLab/nsd_hed_labels); no fMRI",
    license="MIT (repository); images COCO/NSD terms, research use", citation=NSD_CITATION)

ALGONAUTS2023_SAMPLE = DatasetSpec.from_manifest(
    "algonauts2023_subj01_sample", HERE / "algonauts2023_subj01_sample.tsv", folder="nsd/algonauts2023_subj01_sample",
    description="20 Algonauts-2023 training images with NSD subject 1's fsaverage responses (19004 lh + 20544 rh "
                "challenge vertices) and ROI label maps (Net2Brain-App copies); too small for a scientific score",
    license="MIT (app); NSD and Algonauts-2023 terms", citation=f"{ALGONAUTS2023_CITATION} {NSD_CITATION}")

HED_TABLE = "shared1000_HED.tsv"


@functools.lru_cache(maxsize=1)
def shared1000_table() -> tuple[dict[str, str], ...]:
    """Rows of ``shared1000_HED.tsv`` (``File_Name``, ``nsd_id`` 0-based, ``cocoId``, ``HED_short``, ...)."""
    path = resolve(SHARED1000, HED_TABLE)
    with open(path, newline="") as handle:
        rows = tuple(csv.DictReader(handle, delimiter="\t"))
    if len(rows) != 1000 or "nsd_id" not in rows[0]:
        raise DataError(f"{path}: expected 1000 rows with an nsd_id column, got {len(rows)}")
    return rows


def shared1000_ids() -> np.ndarray:
    """The 1000 shared images' 0-based 73k ids, ascending."""
    return np.array([int(r["nsd_id"]) for r in shared1000_table()], dtype=np.int64)


def shared1000_image(nsd_id: int) -> Path:
    """Local path of one shared image (``images/sharedSSSS_nsdNNNNN_downsampled.png``, NNNNN = nsd_id + 1)."""
    for row in shared1000_table():
        if int(row["nsd_id"]) == int(nsd_id):
            return resolve(SHARED1000, "images/" + row["File_Name"].replace(".png", "_downsampled.png"))
    raise DataError(f"73k image {nsd_id} is not one of the NSD shared1000 images")
