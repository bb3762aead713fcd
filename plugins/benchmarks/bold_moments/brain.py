"""Per-subject region responses of BOLD Moments, prepared as Höfling et al. prepare them.

For each subject and split: betas averaged over repetitions, the protocol's stimuli kept (train ids <= 1000 minus
0258/0831, test ids minus 1001/1085/1090/1093/1094/1097) in id order, and each region's vertices kept where the
subject's ncsnr >= 0.2. The leave-one-subject-out (LOSO) predictor of a target subject is the vertex-wise mean of the
other subjects' responses, kept where the mean of their ncsnr >= 0.2 (the authors' ``compute_mean`` and mask).
Only region vertices are held in memory (float32), so ten subjects fit easily although each raw file is ~2 GB.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cortexbench import progress
from cortexbench.errors import DataError, InputError

from . import layout
from .atlas import Atlas
from .protocol import EXCLUDED_TEST, EXCLUDED_TRAIN, NCSNR_THRESHOLD

SPLITS = ("train", "test")


@dataclass
class BrainData:
    """Unmasked region responses ``responses[split][subject][region]`` (stimulus, vertex) and ``ncsnr``."""

    subjects: list[str]
    regions: list[str]
    stimulus_ids: dict[str, list[str]]
    responses: dict[str, dict[str, dict[str, np.ndarray]]]
    ncsnr: dict[str, dict[str, np.ndarray]]
    threshold: float = NCSNR_THRESHOLD
    imputed: dict[str, int] = field(default_factory=dict)

    def target(self, subject: str, region: str, split: str) -> np.ndarray:
        """A subject's region responses on its reliable vertices (ncsnr >= threshold)."""
        mask = self.ncsnr[subject][region] >= self.threshold
        return self.responses[split][subject][region][:, mask]

    def loso(self, subject: str, region: str, split: str) -> np.ndarray:
        """Mean of the other subjects' responses on vertices where their mean ncsnr >= threshold."""
        others = [s for s in self.subjects if s != subject]
        mask = np.mean([self.ncsnr[s][region] for s in others], 0) >= self.threshold
        mean = np.mean([self.responses[split][s][region] for s in others], 0)
        return mean[:, mask]

    def n_vertices(self, subject: str, region: str) -> int:
        return int((self.ncsnr[subject][region] >= self.threshold).sum())


def protocol_ids(ids: Sequence[str], split: str) -> list[str]:
    """The file's ids of ``split`` minus the protocol's exclusions, sorted."""
    excluded = EXCLUDED_TRAIN if split == "train" else EXCLUDED_TEST
    in_split = [i for i in ids if (int(i) <= 1000) == (split == "train")]
    return sorted(i for i in in_split if i not in excluded)


def load(root: str | Path, atlas: Atlas, regions: Sequence[str], subjects: Sequence[str] | None = None,
         threshold: float = NCSNR_THRESHOLD) -> BrainData:
    """Read every subject's betas and ncsnr and keep the regions' vertices."""
    subjects = list(subjects) if subjects else layout.subjects(root)
    region_index = atlas.regions(regions)
    n_vertices = len(atlas.map_all)
    responses: dict[str, dict[str, dict[str, np.ndarray]]] = {s: {} for s in SPLITS}
    ncsnr: dict[str, dict[str, np.ndarray]] = {}
    stimulus_ids: dict[str, list[str]] = {}
    imputed: dict[str, int] = {}
    for subject in progress.bar(subjects, desc="BOLD Moments: loading subjects"):
        values = layout.load_ncsnr(root, subject)
        if values.shape[0] != n_vertices:
            raise DataError(f"{layout.ncsnr_path(root, subject)}: {values.shape[0]} vertices, but the atlas has "
                            f"{n_vertices}; both must index the same grayordinates")
        ncsnr[subject] = {r: np.nan_to_num(values[idx], nan=-np.inf) for r, idx in region_index.items()}
        for split in SPLITS:
            betas, ids = layout.load_betas(root, subject, split)
            path = layout.betas_path(root, subject, split)
            if betas.shape[2] != n_vertices:
                raise DataError(f"{path}: {betas.shape[2]} vertices, but the atlas has {n_vertices}")
            keep = protocol_ids(ids, split)
            if not keep:
                raise DataError(f"{path}: no {split} stimuli left after the protocol's exclusions")
            if split in stimulus_ids and stimulus_ids[split] != keep:
                raise DataError(f"{path}: {split} stimulus ids differ from those of {subjects[0]}; every subject "
                                "must have the same stimuli")
            stimulus_ids[split] = keep
            rows = np.array([ids.index(i) for i in keep])
            wanted = np.concatenate(list(region_index.values()))
            with warnings.catch_warnings():  # all-NaN entries are expected and imputed below
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(betas[:, :, wanted][rows], axis=1).astype(np.float32)
            del betas
            bad = ~np.isfinite(mean)
            if bad.any():  # as the authors' impute_nans after a trial nan-mean: all-NaN entries become 0
                imputed[f"{subject}/{split}"] = int(bad.sum())
                mean[bad] = 0.0
            start = 0
            responses[split][subject] = {}
            for region, idx in region_index.items():
                responses[split][subject][region] = mean[:, start:start + idx.size]
                start += idx.size
    data = BrainData(subjects, list(regions), stimulus_ids, responses, ncsnr, threshold, imputed)
    empty = [(s, r) for s in subjects for r in regions if data.n_vertices(s, r) < 2]
    if empty:
        raise InputError(f"fewer than 2 vertices pass ncsnr >= {threshold} for {empty[:5]}; lower threshold= or "
                         "drop those regions")
    return data
