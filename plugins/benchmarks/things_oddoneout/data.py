"""Readers for the published THINGS files and the concept stimuli built from them.

Formats (all indices in the files are 1-based; everything returned here is 0-based, in ``things_concepts.tsv`` order):

* ``things_concepts.tsv``: tab-separated, a header with ``Word`` and ``uniqueID`` (and WordNet synonyms), 1854 rows;
* ``test_triplets.csv`` (VICE's held-out set): tab-separated, no header, 5 integer columns
  ``object1 object2 object3 odd_position participant`` (objects 1-based, position 1-3);
* ``triplets_large_final_correctednc_correctedorder.csv`` (OSF f5rn6, ~4.7M judgments): tab-separated with a header
  ``image1 image2 image3 choice RT noise_ceiling subject_id HIT_nr trial_nr age gender date time dataset``;
  ``choice`` is the 1-based position of the odd one out, ``noise_ceiling`` is 0 for the training pool and 1, 2, 3
  for the three repeated-triplet test sets (set 2 is the one the THINGS noise ceiling is quoted for);
* THINGS images: ``<root>/<uniqueID>/<uniqueID>_NNx.jpg`` (the THINGS database layout; the image whose name ends in
  ``b`` is the one shown in the odd-one-out task) or ``<root>/<uniqueID>.<ext>`` (one image per concept).
"""
from __future__ import annotations

import csv
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cortexbench.data import resolve
from cortexbench.errors import DataError, InputError
from cortexbench.stimuli import StimulusSet

from .dataset import CONCEPTS, HELD_OUT_TRIPLETS, THINGS

N_CONCEPTS = 1854
PUBLISHED_COLUMNS = ("image1", "image2", "image3", "choice", "noise_ceiling", "subject_id")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Concepts:
    """The THINGS concepts in row order: ``unique_ids`` (unique), ``words`` (31 homonyms) and WordNet synonyms."""

    unique_ids: tuple[str, ...]
    words: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]
    source: str

    def __len__(self) -> int:
        return len(self.unique_ids)

    def text_stimuli(self, column: str = "Word") -> StimulusSet:
        """Concept names as text stimuli, one per concept, identified by uniqueID (what text models embed)."""
        if column not in ("Word", "uniqueID"):
            raise InputError(f"text_column must be 'Word' or 'uniqueID', got {column!r}")
        texts = self.words if column == "Word" else [u.replace("_", " ") for u in self.unique_ids]
        return StimulusSet.from_texts(f"things-concepts-{column.lower()}", list(texts), ids=list(self.unique_ids),
                                      metadata={"word": list(self.words)})


def _split_synonyms(value: str) -> tuple[str, ...]:
    return tuple(s.strip().replace("_", " ") for s in str(value or "").split(",") if s.strip())


def read_concepts(path: str | os.PathLike) -> Concepts:
    """Parse ``things_concepts.tsv`` (any number of rows; the benchmarks check for 1854)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read THINGS concepts from {path}: {err}") from err
    if not rows or not {"Word", "uniqueID"} <= set(rows[0]):
        raise DataError(f"{path}: expected a tab-separated file with columns 'Word' and 'uniqueID' "
                        f"(THINGS things_concepts.tsv); found columns {list(rows[0]) if rows else []}")
    ids = tuple(r["uniqueID"].strip() for r in rows)
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: uniqueID values are not unique")
    synonyms = tuple(_split_synonyms(r.get("WordNet Synonyms", "")) for r in rows)
    return Concepts(ids, tuple(r["Word"].strip() for r in rows), synonyms, str(path))


@functools.lru_cache(maxsize=2)
def load_concepts(path: str | None = None) -> Concepts:
    """The 1854 THINGS concepts (declared file by default)."""
    concepts = read_concepts(path or resolve(THINGS, CONCEPTS))
    if len(concepts) != N_CONCEPTS:
        raise DataError(f"{concepts.source}: expected {N_CONCEPTS} THINGS concepts, found {len(concepts)}")
    return concepts


@dataclass(frozen=True)
class Responses:
    """Individual odd-one-out judgments: ``triplets`` (n, 3) 0-based concept rows in presentation order,
    ``choice`` (n,) 0-based position of the odd one out, ``subject`` (n,) and ``split`` (n,): the published
    ``noise_ceiling`` code (0 = training pool, 1-3 = repeated-triplet test sets)."""

    triplets: np.ndarray
    choice: np.ndarray
    subject: np.ndarray
    split: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.choice)

    def select(self, mask: np.ndarray) -> Responses:
        return Responses(self.triplets[mask], self.choice[mask], self.subject[mask], self.split[mask], self.source)


def _check_responses(triplets: np.ndarray, choice: np.ndarray, n_concepts: int, source: str) -> None:
    if triplets.size == 0:
        raise DataError(f"{source}: no triplets")
    if triplets.min() < 0 or triplets.max() >= n_concepts:
        raise DataError(f"{source}: object indices must lie in 1..{n_concepts} (1-based); found "
                        f"{triplets.min() + 1}..{triplets.max() + 1}")
    a, b, c = triplets.T
    repeated = (a == b) | (a == c) | (b == c)
    if repeated.any():
        raise DataError(f"{source}: some triplets repeat an object")
    if choice.min() < 0 or choice.max() > 2:
        raise DataError(f"{source}: the odd-one-out position must be 1, 2 or 3; found {choice.min() + 1}.."
                        f"{choice.max() + 1}")


def read_held_out_triplets(path: str | os.PathLike, n_concepts: int = N_CONCEPTS) -> Responses:
    """VICE's ``test_triplets.csv``: 5 tab-separated integer columns, no header."""
    path = Path(path)
    try:
        table = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read held-out THINGS triplets from {path}: {err}; expected 5 tab-separated "
                        "integer columns (object1 object2 object3 odd_position participant)") from err
    if table.shape[1] != 5:
        raise DataError(f"{path}: expected 5 columns (object1 object2 object3 odd_position participant), "
                        f"found {table.shape[1]}")
    triplets, choice = table[:, :3] - 1, table[:, 3] - 1
    _check_responses(triplets, choice, n_concepts, str(path))
    return Responses(triplets, choice, table[:, 4].astype(str), np.full(len(table), 2, dtype=np.int64), str(path))


def load_held_out_triplets() -> Responses:
    """The 20,000 real held-out judgments in the mirror (1000 triplets x ~20 raters; treated as test set 2)."""
    return read_held_out_triplets(resolve(THINGS, HELD_OUT_TRIPLETS))


def read_published_triplets(path: str | os.PathLike, n_concepts: int = N_CONCEPTS) -> Responses:
    """The OSF file ``triplets_large_final_correctednc_correctedorder.csv`` (tab-separated, with a header)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"THINGS triplet file {path} does not exist; download "
                         "triplets_large_final_correctednc_correctedorder.csv from https://osf.io/f5rn6/ "
                         "(data/triplet_dataset/) and pass its path as --benchmark-option triplets=PATH")
    try:
        table = pd.read_csv(path, sep="\t", usecols=lambda c: c in PUBLISHED_COLUMNS,
                            dtype={"subject_id": str}, engine="c")
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read {path} as the published THINGS triplet table: {err}") from err
    missing = [c for c in PUBLISHED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the published file has a tab-separated header "
                        f"starting image1 image2 image3 choice RT noise_ceiling subject_id ...")
    if table[list(PUBLISHED_COLUMNS[:5])].isna().any().any():
        raise DataError(f"{path}: empty values in the image/choice/noise_ceiling columns")
    triplets = table[["image1", "image2", "image3"]].to_numpy(np.int64) - 1
    choice = table["choice"].to_numpy(np.int64) - 1
    _check_responses(triplets, choice, n_concepts, str(path))
    split = table["noise_ceiling"].to_numpy(np.float64).astype(np.int64)
    if not np.isin(split, (0, 1, 2, 3)).all():
        raise DataError(f"{path}: noise_ceiling must be 0 (training pool) or 1-3 (test sets); found "
                        f"{sorted(set(split.tolist()) - {0, 1, 2, 3})[:5]}")
    return Responses(triplets, choice, table["subject_id"].to_numpy(str), split, str(path))


_B_IMAGE = re.compile(r"_\d+b$")


def concept_images(root: str | os.PathLike, concepts: Concepts) -> StimulusSet:
    """One image per concept from a THINGS image folder, identified by uniqueID, in concept order."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"THINGS image folder {root} does not exist; pass the folder holding <uniqueID>/ "
                         "sub-folders (THINGS database, https://osf.io/jum2f/) or <uniqueID>.jpg files")
    paths, missing = [], []
    for uid in concepts.unique_ids:
        folder = root / uid
        found = None
        if folder.is_dir():
            images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            reference = [p for p in images if _B_IMAGE.search(p.stem)]
            found = (reference or images or [None])[0]
        else:
            found = next((root / f"{uid}{s}" for s in IMAGE_SUFFIXES if (root / f"{uid}{s}").is_file()), None)
        if found is None:
            missing.append(uid)
        else:
            paths.append(found)
    if missing:
        raise InputError(f"THINGS image folder {root}: no image for {len(missing)} of {len(concepts)} concepts, "
                         f"e.g. {missing[:5]}; expected {root}/<uniqueID>/<uniqueID>_01b.jpg or {root}/<uniqueID>.jpg")
    return StimulusSet.from_files("things-concept-images", paths, ids=list(concepts.unique_ids),
                                  metadata={"word": list(concepts.words)})
