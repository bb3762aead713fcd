"""Small datasets in NSD's published layouts with planted structure, for tests and demos.

Both writers take real images (e.g. the NSD shared1000 PNGs) keyed by a 0-based 73k id and a *signal* per image (e.g.
one model layer's pooled features). Every region's clean response is a random linear read-out of the z-scored signal
(a different read-out per subject and region), scaled to unit variance per voxel; trials add Gaussian noise. A
benchmark run on the files must therefore find the signal's source (the planted layer) most aligned.

* :func:`write_native`: ``nsd_expdesign.mat``, per-session ``betas_sessionSS.hdf5`` (int16, 1/300 units, ``(trials,
  Z, Y, X)``), the subject's ``HCP_MMP1.nii.gz`` ``(X, Y, Z)``, ``HCP_MMP1.mgz.ctab``, ``nsd_stimuli.hdf5`` (a sparse,
  chunked ``(73000, H, W, 3)`` brick holding only the given images), ``nsd_stim_info_merged.csv`` and COCO caption
  files (two captions per image, so "first caption" is testable).
* :func:`write_algonauts`: per subject ``training_fmri/{lh,rh}_training_fmri.npy`` (repeat-averaged), the training
  PNGs named ``train-NNNN_nsd-IIIII.png`` in id order, ROI masks in challenge space with their ``mapping_*.npy``,
  ``{lh,rh}.all-vertices_fsaverage_space.npy``, and (``hcp_atlas_dir``) fsaverage ``{lh,rh}.HCP_MMP1.mgz``.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cortexbench.errors import InputError

from . import native
from . import regions as region_tables

N_IMAGES_73K = 73000
FSAVERAGE_VERTICES = 163842


def _zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


def planted(signal: np.ndarray, n_columns: int, rng: np.random.Generator) -> np.ndarray:
    """``(images, n_columns)`` random linear read-out of the z-scored signal, unit variance per column."""
    z = _zscore(signal)
    clean = z @ rng.normal(size=(z.shape[1], n_columns)) / np.sqrt(z.shape[1])
    return _zscore(clean)


def _check(images: Mapping[int, np.ndarray], signal: Mapping[int, np.ndarray], ids: Sequence[int]) -> None:
    missing = [i for i in ids if i not in images or i not in signal]
    if missing:
        raise InputError(f"fixture: images/signal missing for 73k id(s) {missing[:5]}")
    shapes = {np.asarray(images[i]).shape for i in ids}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise InputError(f"fixture: all images must be (H, W, 3) of one size, got {sorted(shapes)}")


def write_native(root: str | Path, images: Mapping[int, np.ndarray], signal: Mapping[int, np.ndarray], *,
                 shared_ids: Sequence[int], subject_ids: Mapping[str, Sequence[int]], sessions: int = 3,
                 repeats: int = 3, regions: Sequence[str] = ("V1", "V2", "V3", "V4", "FFC", "4"),
                 voxels: int = 24, grid: tuple[int, int, int] = (12, 10, 8), noise: float = 0.5,
                 captions: Mapping[int, Sequence[str]] | None = None, coco_ids: Mapping[int, int] | None = None,
                 seed: int = 0) -> Path:
    """Write a native-layout NSD root; returns it. ``subject_ids`` holds each subject's non-shared images."""
    import h5py
    import nibabel
    from scipy.io import savemat

    root = Path(root)
    rng = np.random.default_rng(seed)
    counts = {len(v) for v in subject_ids.values()}
    if len(counts) != 1:
        raise InputError("fixture: every subject needs the same number of non-shared images (one masterordering)")
    n_columns = len(shared_ids) + counts.pop()
    total = n_columns * repeats
    if total % sessions:
        raise InputError(f"fixture: {n_columns} images x {repeats} repeats do not split into {sessions} sessions")
    trials = total // sessions
    all_ids = sorted({*shared_ids, *(i for v in subject_ids.values() for i in v)})
    _check(images, signal, all_ids)
    names = region_tables.hcp_names()
    label_of = {name: label for label, name in names.items()}
    unknown = [r for r in regions if r not in label_of]
    if unknown:
        raise InputError(f"fixture: {unknown} are not HCP-MMP1 region names")

    # experimental design: subjectim[:, :n_shared] are the shared images (NSD convention), one masterordering
    subjectim = np.ones((8, n_columns), dtype=np.float64)
    for subject, ids in subject_ids.items():
        subjectim[native.subject_index(subject)] = np.array([*shared_ids, *ids], dtype=np.float64) + 1
    order = rng.permutation(np.repeat(np.arange(n_columns), repeats)) + 1
    design = root / native.EXPDESIGN
    design.parent.mkdir(parents=True, exist_ok=True)
    savemat(design, {"masterordering": order[None].astype(np.float64), "subjectim": subjectim,
                     "sharedix": np.array(shared_ids, dtype=np.float64)[None] + 1})

    ctab = root / native.CTAB
    ctab.parent.mkdir(parents=True, exist_ok=True)
    ctab.write_text("0 Unknown 0 0 0 0\n" + "".join(f"{k} {n} {k % 255} 0 0 0\n" for k, n in names.items()))

    size = int(np.prod(grid))
    signal_matrix = np.stack([np.asarray(signal[i], dtype=np.float64).ravel() for i in all_ids])
    row_of = {i: r for r, i in enumerate(all_ids)}
    for subject, ids in subject_ids.items():
        labels = np.zeros(size, dtype=np.int64)               # flat (Z, Y, X), the betas' order
        cells = rng.permutation(size)[: voxels * len(regions)]
        for k, region in enumerate(regions):
            labels[cells[k * voxels:(k + 1) * voxels]] = label_of[region]
        clean = rng.normal(size=(len(all_ids), size))          # voxels outside the regions: pure noise
        for region in regions:
            columns = np.flatnonzero(labels == label_of[region])
            clean[:, columns] = planted(signal_matrix, columns.size, rng)
        atlas = root / native.ATLAS.format(subject=subject)
        atlas.parent.mkdir(parents=True, exist_ok=True)
        xyz = labels.reshape(grid[::-1]).transpose(2, 1, 0)
        nibabel.save(nibabel.Nifti1Image(xyz.astype(np.int16), np.eye(4)), atlas)
        column_ids = subjectim[native.subject_index(subject)].astype(np.int64) - 1
        for session in range(1, sessions + 1):
            trial_ids = column_ids[order[(session - 1) * trials: session * trials] - 1]
            values = clean[[row_of[i] for i in trial_ids]] + noise * rng.normal(size=(trials, size))
            betas = np.clip(np.rint(values * 2.0 * native.BETA_SCALE), -32767, 32767).astype(np.int16)
            path = root / native.BETAS.format(subject=subject, session=session)
            path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(path, "w") as handle:
                handle.create_dataset("betas", data=betas.reshape(trials, *grid[::-1]))

    height, width, _ = np.asarray(images[all_ids[0]]).shape
    brick = root / native.STIMULI
    brick.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(brick, "w") as handle:
        data = handle.create_dataset("imgBrick", shape=(N_IMAGES_73K, height, width, 3), dtype=np.uint8,
                                     chunks=(1, height, width, 3), compression="gzip")
        for i in all_ids:
            data[i] = np.asarray(images[i], dtype=np.uint8)
    _write_captions(root, all_ids, captions, coco_ids)
    return root


def _write_captions(root: Path, ids: Sequence[int], captions, coco_ids) -> None:
    captions = captions or {i: [f"photo {i}", f"another description of photo {i}"] for i in ids}
    coco_ids = coco_ids or {i: 1_000_000 + i for i in ids}
    split = {i: ("train2017" if k % 2 == 0 else "val2017") for k, i in enumerate(ids)}
    info = root / native.STIM_INFO
    info.parent.mkdir(parents=True, exist_ok=True)
    with open(info, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "cocoId", "cocoSplit", "nsdId"])
        for k in range(N_IMAGES_73K):
            writer.writerow([k, coco_ids.get(k, -1), split.get(k, "train2017"), k])
    for name in ("train2017", "val2017"):
        annotations = [{"id": 10 * coco_ids[i] + j, "image_id": coco_ids[i], "caption": text}
                       for i in ids if split[i] == name for j, text in enumerate(captions[i])]
        path = root / native.CAPTIONS.format(split=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"annotations": annotations}))


def write_algonauts(root: str | Path, images: Mapping[int, np.ndarray], signal: Mapping[int, np.ndarray], *,
                    subject_ids: Mapping[str, Sequence[int]], n_vertices: tuple[int, int] = (60, 50),
                    rois: Mapping[str, Mapping[int, int]] | None = None, noise: float = 0.3,
                    hcp_atlas_dir: str | Path | None = None, hcp_regions: Sequence[str] = ("V1", "V2", "V3"),
                    seed: int = 0) -> Path:
    """Write an Algonauts-2023 challenge root; ``subject_ids`` holds all of a subject's training images.

    ``rois`` maps a family to ``{label: vertices per hemisphere}`` (default: V1v/V2v/hV4 and early/ventral).
    """
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    rois = rois or {"prf-visualrois": {1: 8, 3: 8, 7: 6}, "streams": {1: 10, 5: 12}}
    all_ids = sorted({i for v in subject_ids.values() for i in v})
    _check(images, signal, all_ids)
    signal_matrix = {i: np.asarray(signal[i], dtype=np.float64).ravel() for i in all_ids}
    hcp_labels = {}
    if hcp_atlas_dir is not None:
        label_of = {n: k for k, n in region_tables.hcp_names().items()}
        hcp_atlas_dir = Path(hcp_atlas_dir)
        hcp_atlas_dir.mkdir(parents=True, exist_ok=True)
    # challenge vertices: one random subset of each fsaverage hemisphere, shared by the subjects
    vertices = {hemi: np.sort(rng.choice(FSAVERAGE_VERTICES, size=count, replace=False))
                for hemi, count in zip(("lh", "rh"), n_vertices)}
    for subject, ids in subject_ids.items():
        ids = sorted(ids)
        base = root / subject
        fmri = {}
        for hemi, count in zip(("lh", "rh"), n_vertices):
            mask = np.zeros(FSAVERAGE_VERTICES, dtype=np.int64)
            mask[vertices[hemi]] = 1
            (base / "roi_masks").mkdir(parents=True, exist_ok=True)
            np.save(base / "roi_masks" / f"{hemi}.all-vertices_fsaverage_space.npy", mask)
            clean = planted(np.stack([signal_matrix[i] for i in ids]), count, rng)
            fmri[hemi] = (clean + noise * rng.normal(size=clean.shape)).astype(np.float32)
            for family, sizes in rois.items():
                labels = np.zeros(count, dtype=np.int64)
                cells = rng.permutation(count)
                start = 0
                for label, size in sizes.items():
                    labels[cells[start:start + size]] = label
                    start += size
                np.save(base / "roi_masks" / f"{hemi}.{family}_challenge_space.npy", labels)
            if hcp_atlas_dir is not None and hemi not in hcp_labels:
                atlas = np.zeros(FSAVERAGE_VERTICES, dtype=np.int64)
                chunks = np.array_split(rng.permutation(vertices[hemi]), len(hcp_regions))
                for region, chunk in zip(hcp_regions, chunks):
                    atlas[chunk] = label_of[region]
                hcp_labels[hemi] = atlas
        for family in rois:
            names = {0: "Unknown", **region_tables.ALGONAUTS_FAMILIES[family]}
            np.save(base / "roi_masks" / f"mapping_{family}.npy", np.array(names, dtype=object), allow_pickle=True)
        folder = base / "training_split" / "training_fmri"
        folder.mkdir(parents=True, exist_ok=True)
        for hemi in ("lh", "rh"):
            np.save(folder / f"{hemi}_training_fmri.npy", fmri[hemi])
        folder = base / "training_split" / "training_images"
        folder.mkdir(parents=True, exist_ok=True)
        for k, nsd_id in enumerate(ids, 1):
            Image.fromarray(np.asarray(images[nsd_id], dtype=np.uint8)).save(folder / f"train-{k:04d}_nsd-{nsd_id:05d}.png")
    if hcp_atlas_dir is not None:
        import nibabel

        for hemi, atlas in hcp_labels.items():
            nibabel.save(nibabel.MGHImage(atlas.astype(np.int32).reshape(-1, 1, 1), np.eye(4)),
                         hcp_atlas_dir / f"{hemi}.HCP_MMP1.mgz")
    return root
