"""The Algonauts-2023 challenge layout of NSD (Gifford et al. 2023), as released and widely used by students.

Per subject, relative to the challenge-data root (``algonauts_2023_challenge_data/``):

* ``subjNN/training_split/training_fmri/{lh,rh}_training_fmri.npy``: ``(images, vertices)`` float32 fsaverage
  responses on the challenge vertices (nsdgeneral + RSC), z-scored per vertex within each session and averaged over
  repeats (the challenge's preparation, not Shen et al.'s; see the README);
* ``subjNN/training_split/training_images/train-NNNN_nsd-IIIII.png``: images in row order, IIIII the 0-based 73k id;
* ``subjNN/roi_masks/{lh,rh}.<family>_challenge_space.npy``: one label per challenge vertex, and
  ``subjNN/roi_masks/mapping_<family>.npy``: a pickled ``{label: name}`` dict (read with
  :func:`cortexbench.safe_load.load_npy`, which refuses anything but arrays and builtin containers), for the
  families prf-visualrois, floc-bodies/faces/places/words and streams.

Regions are the named ROIs of those families, each the union of both hemispheres. With ``hcp_atlas=DIR`` (a folder
holding NSD's fsaverage ``lh.HCP_MMP1.mgz`` and ``rh.HCP_MMP1.mgz``, i.e. ``nsddata/freesurfer/fsaverage/label``) the
regions are instead the HCP-MMP1 regions that have challenge vertices, mapped through
``roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy``. The shared images are recognised by their 73k ids among the
NSD shared1000 list.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cortexbench import safe_load
from cortexbench.errors import DataError, InputError
from cortexbench.stimuli import StimulusSet

from . import data as nsd_data
from . import native
from . import regions as region_tables
from .responses import RegionResponses, build_cached, cache_key, file_stamp, region_order

ROOT_ENV = "CORTEXBENCH_ALGONAUTS2023_ROOT"
FMRI = "{subject}/training_split/training_fmri/{hemi}_training_fmri.npy"
IMAGES = "{subject}/training_split/training_images"
ROI = "{subject}/roi_masks/{hemi}.{family}_challenge_space.npy"
ROI_FSAVERAGE = "{subject}/roi_masks/{hemi}.all-vertices_fsaverage_space.npy"
MAPPING = "{subject}/roi_masks/mapping_{family}.npy"
IMAGE_NAME = re.compile(r"train-(\d+)_nsd-(\d+)\.png")
HEMIS = ("lh", "rh")

LAYOUT_HELP = f"""expected the Algonauts-2023 challenge layout under the root:
  {FMRI.format(subject='subjNN', hemi='{lh,rh}')}
  {IMAGES.format(subject='subjNN')}/train-NNNN_nsd-IIIII.png
  {ROI.format(subject='subjNN', hemi='{lh,rh}', family='<family>')} and {MAPPING.format(subject='subjNN', family='<family>')}
  (families: {', '.join(region_tables.ALGONAUTS_FAMILIES)}); with hcp_atlas=DIR also
  {ROI_FSAVERAGE.format(subject='subjNN', hemi='{lh,rh}')} and DIR/{{lh,rh}}.HCP_MMP1.mgz"""


class Algonauts2023:
    """Loader for one Algonauts-2023 challenge-data root."""

    layout = "algonauts2023"
    help = LAYOUT_HELP

    def __init__(self, root: str | os.PathLike | None, *, regions: Sequence[str] | None = None,
                 hcp_atlas: str | os.PathLike | None = None, nsd_root: str | os.PathLike | None = None,
                 benchmark: str = "nsd.algonauts2023.rbf-cka"):
        self.root = native.resolve_root(root, ROOT_ENV, benchmark, LAYOUT_HELP)
        self.wanted_regions = list(regions) if regions is not None else None
        self.hcp_atlas = Path(hcp_atlas).expanduser() if hcp_atlas else None
        self.nsd_root = nsd_root
        self.benchmark = benchmark

    def path(self, relative: str) -> Path:
        return self.root / relative

    def require(self, relatives: Sequence[str | Path], what: str) -> None:
        missing = [str(r) for r in relatives if not (Path(r) if Path(r).is_absolute() else self.path(str(r))).is_file()]
        if missing:
            raise DataError(f"{self.benchmark}: {what} missing under {self.root}:\n  " + "\n  ".join(missing[:8])
                            + f"\n{LAYOUT_HELP}")

    # --- images --------------------------------------------------------------------------------------------
    def image_files(self, subject: str) -> tuple[list[Path], np.ndarray]:
        folder = self.path(IMAGES.format(subject=subject))
        if not folder.is_dir():
            raise DataError(f"{self.benchmark}: no image folder {folder}\n{LAYOUT_HELP}")
        files = sorted(p for p in folder.iterdir() if IMAGE_NAME.fullmatch(p.name))
        if not files:
            raise DataError(f"{folder}: no train-NNNN_nsd-IIIII.png images\n{LAYOUT_HELP}")
        numbers = [int(IMAGE_NAME.fullmatch(p.name).group(1)) for p in files]
        if numbers != list(range(1, len(files) + 1)):
            raise DataError(f"{folder}: image numbers must run 1..{len(files)} without gaps (train-0001, ...)")
        return files, np.array([int(IMAGE_NAME.fullmatch(p.name).group(2)) for p in files], dtype=np.int64)

    # --- regions -------------------------------------------------------------------------------------------
    def _families(self, subject: str) -> dict[str, tuple[np.ndarray, dict[int, str]]]:
        """Per ROI family: labels over the concatenated [lh | rh] columns, and label names."""
        out = {}
        for family, default_names in region_tables.ALGONAUTS_FAMILIES.items():
            files = [ROI.format(subject=subject, hemi=h, family=family) for h in HEMIS]
            if not all(self.path(f).is_file() for f in files):
                continue
            labels = np.concatenate([np.load(self.path(f)).astype(np.int64).ravel() for f in files])
            names = dict(default_names)
            mapping = self.path(MAPPING.format(subject=subject, family=family))
            if mapping.is_file():
                loaded = safe_load.load_npy(mapping)
                if not isinstance(loaded, dict):
                    raise DataError(f"{mapping}: expected a pickled {{label: name}} dict, got {type(loaded).__name__}")
                names = {int(k): str(v) for k, v in loaded.items() if int(k) > 0}
            out[family] = (labels, names)
        if not out:
            raise DataError(f"{self.benchmark}: {subject} has no ROI mask files\n{LAYOUT_HELP}")
        return out

    def _hcp_labels(self, subject: str, n_columns: tuple[int, int]) -> tuple[np.ndarray, dict[int, str]]:
        import nibabel

        files = [ROI_FSAVERAGE.format(subject=subject, hemi=h) for h in HEMIS]
        atlas = [self.hcp_atlas / f"{h}.HCP_MMP1.mgz" for h in HEMIS]
        self.require([*files, *atlas], "the files that map challenge vertices to the fsaverage HCP-MMP1 atlas")
        labels = []
        for hemi_file, atlas_file, count in zip(files, atlas, n_columns):
            vertices = np.flatnonzero(np.load(self.path(hemi_file)).ravel())
            volume = np.rint(np.asarray(nibabel.load(atlas_file).get_fdata()).ravel()).astype(np.int64)
            if vertices.size != count or vertices.max(initial=-1) >= volume.size:
                raise DataError(f"{self.path(hemi_file)} marks {vertices.size} vertices but the fMRI has {count} "
                                f"columns (or they exceed the {volume.size} vertices of {atlas_file})")
            labels.append(volume[vertices])
        return np.concatenate(labels), region_tables.hcp_names()

    def _columns(self, subject: str, n_columns: tuple[int, int]) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
        """Column indices into [lh | rh] in region order, region names and bounds."""
        if self.hcp_atlas is not None:
            labels, names = self._hcp_labels(subject, n_columns)
            return region_order(labels, names, self.wanted_regions, f"{self.benchmark} {subject} HCP-MMP1")
        orders, names, bounds, offset = [], [], [], 0
        for family, (labels, family_names) in self._families(subject).items():
            if labels.size != sum(n_columns):
                raise DataError(f"{self.benchmark}: {subject}'s {family} masks have {labels.size} entries for "
                                f"{sum(n_columns)} fMRI columns")
            order, chosen, b = region_order(labels, family_names, None, f"{subject} {family}")
            orders.append(order)
            names.extend(chosen)
            bounds.append(b + offset)
            offset += order.size
        if len(set(names)) != len(names):
            raise DataError(f"{self.benchmark}: ROI names repeat across families: {sorted(names)}")
        order = np.concatenate(orders)
        bounds = np.concatenate(bounds)
        if self.wanted_regions is not None:
            missing = [r for r in self.wanted_regions if r not in names]
            if missing:
                raise InputError(f"{self.benchmark}: region(s) {missing} have no vertices in {subject}; present are "
                                 f"{names}")
            keep = [names.index(r) for r in self.wanted_regions]
            parts = [order[bounds[k, 0]:bounds[k, 1]] for k in keep]
            sizes = np.cumsum([0] + [p.size for p in parts])
            return np.concatenate(parts), tuple(self.wanted_regions), np.stack([sizes[:-1], sizes[1:]], 1)
        return order, tuple(names), bounds

    # --- responses -----------------------------------------------------------------------------------------
    def responses(self, subject: str) -> RegionResponses:
        fmri = [FMRI.format(subject=subject, hemi=h) for h in HEMIS]
        self.require(fmri, f"{subject}'s training fMRI")
        files, _ = self.image_files(subject)
        roi_files = sorted(str(p) for p in self.path(f"{subject}/roi_masks").glob("*.npy")) \
            if self.path(f"{subject}/roi_masks").is_dir() else []
        key = cache_key({"layout": self.layout, "subject": subject, "regions": self.wanted_regions,
                         "fmri": [file_stamp(self.path(f)) for f in fmri], "n_images": len(files),
                         "rois": [file_stamp(Path(f)) for f in roi_files],
                         "hcp": [file_stamp(self.hcp_atlas / f"{h}.HCP_MMP1.mgz") for h in HEMIS]
                         if self.hcp_atlas else None})
        return build_cached(key, lambda allocate: self._convert(subject, allocate))

    def _convert(self, subject: str, allocate) -> RegionResponses:
        lh, rh = (np.load(self.path(FMRI.format(subject=subject, hemi=h)), mmap_mode="r") for h in HEMIS)
        files, nsd_ids = self.image_files(subject)
        if lh.shape[0] != len(files) or rh.shape[0] != len(files):
            raise DataError(f"{self.benchmark}: {subject} has {len(files)} training images but fMRI rows "
                            f"{lh.shape[0]} (lh) / {rh.shape[0]} (rh)")
        order, names, bounds = self._columns(subject, (lh.shape[1], rh.shape[1]))
        shared = np.isin(nsd_ids, nsd_data.shared1000_ids())
        rows = np.concatenate([np.flatnonzero(~shared), np.flatnonzero(shared)])
        out = allocate((len(rows), order.size))
        n_lh = lh.shape[1]
        for a, b in bounds:   # one region at a time keeps host memory at one region's block
            idx = order[a:b]
            left, right = idx[idx < n_lh], idx[idx >= n_lh] - n_lh
            block = np.concatenate([np.asarray(lh[:, left]), np.asarray(rh[:, right])], axis=1)
            out[:, a:b] = block[rows]
        return RegionResponses(
            subject=subject, array=out, stimulus_ids=tuple(native.stimulus_id(i) for i in nsd_ids[rows]),
            n_model=int((~shared).sum()), regions=names, bounds=bounds, nsd_ids=nsd_ids[rows],
            source=f"Algonauts-2023 {subject} ({self.root}, fsaverage challenge vertices, "
                   + ("HCP-MMP1 regions)" if self.hcp_atlas else "ROI masks)"))

    # --- stimuli -------------------------------------------------------------------------------------------
    def images(self, subject: str, responses: RegionResponses, identifier: str,
               ids: Sequence[str] | None = None) -> StimulusSet:
        """The training PNGs of rows ``ids`` (default: the model rows)."""
        nsd_ids = responses.nsd_ids_of(ids)
        files, ids = self.image_files(subject)
        by_id = {int(i): p for i, p in zip(ids, files)}
        return StimulusSet.from_files(identifier, [by_id[int(i)] for i in nsd_ids],
                                      ids=[native.stimulus_id(i) for i in nsd_ids],
                                      metadata={"nsd_id": [int(i) for i in nsd_ids]})

    def captions(self, subject: str, responses: RegionResponses, identifier: str,
                 ids: Sequence[str] | None = None) -> StimulusSet:
        """COCO captions need the NSD metadata: ``nsd_root=DIR`` (or ``$CORTEXBENCH_NSD_ROOT``)."""
        source = native.NativeNSD(self.nsd_root, benchmark=f"{self.benchmark} (captions: nsd_root=)")
        return source.captions_of(responses.nsd_ids_of(ids), identifier)
