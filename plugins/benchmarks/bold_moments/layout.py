"""The published BOLD Moments layout (OpenNeuro ds005165) and a safe reader for its pickled betas.

    <root>/derivatives/versionB/fsLR32k/GLM/sub-XX/prepared_betas/
        sub-XX_organized_betas_task-{train,test}_normalized.pkl   (betas, ids): betas [stimulus, repetition, vertex]
                                                                  float64, ids "vid0001".. in stimulus order
        sub-XX_noiseceiling_task-train_n-3.pkl                    (ncsnr, noise ceiling %): each [vertex]
    <root>/stimuli/stimulus_set/mp4_h264/XXXX.mp4                  the 1102 clips (or stimuli/{train,test}/XXXX.mp4)

The vertex axis holds the 91282 CIFTI grayordinates of fsLR32k (as written by the dataset's
``bmd_organize_betas_versionB_fsLR32k.py``). The files are pickles, so they are read with a restricted unpickler
that only rebuilds numpy arrays, dtypes and builtin containers; any other global in the stream is refused, which
makes a tampered file fail instead of running code.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from cortexbench import safe_load
from cortexbench.errors import DataError, InputError

GLM = Path("derivatives") / "versionB" / "fsLR32k" / "GLM"
VIDEO_DIRS = (Path("stimuli") / "stimulus_set" / "mp4_h264", Path("stimuli"))


def load_pickle(path: str | Path) -> Any:
    """Unpickle numpy arrays, strings and containers only (:func:`cortexbench.safe_load.load_pickle`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"BOLD Moments file {path} does not exist; check root= (the ds005165 folder) or the file "
                         "name pattern sub-XX_organized_betas_task-<split>_normalized.pkl")
    return safe_load.load_pickle(path)


def write_pickle(obj: Any, path: str | Path) -> None:
    """Write as the dataset does (``pickle.HIGHEST_PROTOCOL``); used by the fixture writer."""
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)


def glm_dir(root: str | Path) -> Path:
    """The GLM folder: ``root`` itself when it holds ``sub-*`` folders, else ``root/derivatives/.../GLM``."""
    root = Path(root)
    if any(root.glob("sub-*/prepared_betas")):
        return root
    return root / GLM


def betas_path(root: str | Path, subject: str, split: str) -> Path:
    return glm_dir(root) / subject / "prepared_betas" / f"{subject}_organized_betas_task-{split}_normalized.pkl"


def ncsnr_path(root: str | Path, subject: str) -> Path:
    return glm_dir(root) / subject / "prepared_betas" / f"{subject}_noiseceiling_task-train_n-3.pkl"


def subjects(root: str | Path) -> list[str]:
    found = sorted(p.parent.name for p in glm_dir(root).glob("sub-*/prepared_betas"))
    if not found:
        raise InputError(f"no sub-XX/prepared_betas folders under {glm_dir(root)}; root= must be the ds005165 "
                         "folder (or its derivatives/versionB/fsLR32k/GLM folder)")
    return found


def load_betas(root: str | Path, subject: str, split: str) -> tuple[np.ndarray, list[str]]:
    """Betas ``[stimulus, repetition, vertex]`` and the 4-digit video ids, checked against each other."""
    path = betas_path(root, subject, split)
    obj = load_pickle(path)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DataError(f"{path}: expected a pickled (betas, stimulus_ids) pair, got {type(obj).__name__}")
    betas, ids = obj
    betas = np.asarray(betas)
    if betas.ndim != 3 or betas.shape[0] != len(ids):
        raise DataError(f"{path}: betas of shape {betas.shape} do not match {len(ids)} stimulus ids; expected "
                        "[stimulus, repetition, vertex]")
    clean = []
    for sid in ids:
        sid = str(sid)
        if not (sid.startswith("vid") and sid[3:].isdigit()):
            raise DataError(f"{path}: stimulus id {sid!r} is not of the form vidNNNN")
        clean.append(sid[3:])
    return betas, clean


def load_ncsnr(root: str | Path, subject: str) -> np.ndarray:
    """Noise-ceiling SNR per vertex (train split, n = 3 repetitions)."""
    path = ncsnr_path(root, subject)
    obj = load_pickle(path)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DataError(f"{path}: expected a pickled (ncsnr, noiseceiling) pair, got {type(obj).__name__}")
    ncsnr = np.asarray(obj[0], dtype=float)
    if ncsnr.ndim != 1:
        raise DataError(f"{path}: ncsnr must be 1-D (one value per vertex), got shape {ncsnr.shape}")
    return ncsnr


def video_path(root: str | Path, video_id: str, videos: str | Path | None = None) -> Path:
    """The clip's mp4: ``videos/<id>.mp4`` when given, else the dataset's stimulus folders."""
    candidates = [Path(videos) / f"{video_id}.mp4"] if videos else []
    split = "train" if int(video_id) <= 1000 else "test"
    candidates += [Path(root) / VIDEO_DIRS[0] / f"{video_id}.mp4", Path(root) / VIDEO_DIRS[1] / split / f"{video_id}.mp4"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(f"video {video_id} not found (looked at {', '.join(str(c) for c in candidates)}); the clips "
                     "are distributed separately (boldmomentsdataset.csail.mit.edu): pass videos=FOLDER")
