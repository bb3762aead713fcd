"""The Natural Scenes Dataset in its published layout (Allen et al. 2022), read the way Shen et al. prepared it.

Files used, relative to the NSD root (as on the NSD AWS bucket):

* ``nsddata/experiments/nsd/nsd_expdesign.mat``: ``masterordering`` (trial -> 1-based column of ``subjectim``),
  ``subjectim`` (subject x 10000, 1-based 73k image ids), ``sharedix`` (the 1000 shared 73k ids, 1-based);
* ``nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionSS.hdf5``: dataset ``betas``,
  ``(trials, Z, Y, X)`` int16 in units of 1/300 percent signal change;
* ``nsddata/ppdata/subjNN/func1pt8mm/roi/HCP_MMP1.nii.gz``: the subject's HCP-MMP1 volume ``(X, Y, Z)``, labels 1-180
  (both hemispheres share a label); names from ``nsddata/freesurfer/fsaverage/label/HCP_MMP1.mgz.ctab`` when present;
* ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5``: dataset ``imgBrick`` ``(73000, H, W, 3)`` uint8;
* ``nsddata/experiments/nsd/nsd_stim_info_merged.csv`` (row i = 73k image i: ``cocoId``, ``cocoSplit``) and
  ``nsddata_stimuli/stimuli/nsd/annotations/captions_{train2017,val2017}.json`` (COCO captions) for text models.

Sessions are concatenated **in session order** (Shen et al.'s script concatenates them in the order parallel reads
complete, which can misalign betas and trials; we do not copy that). Each session's trials map to images through
``subjectim[subject, masterordering[(session - 1) * trials + t]]``.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cortexbench import config, progress
from cortexbench.errors import DataError, InputError
from cortexbench.stimuli import StimulusSet

from . import regions as region_tables
from .responses import RegionResponses, build_cached, cache_key, file_stamp, region_order

ROOT_ENV = "CORTEXBENCH_NSD_ROOT"
#: Shen et al.'s subjects (the four who completed all 40 sessions).
SUBJECTS = ("subj01", "subj02", "subj05", "subj07")
#: Shen et al. read sessions 1-37 (the sessions public before the Algonauts-2023 hold-out was released).
PUBLISHED_SESSIONS = 37
BETA_SCALE = 300.0
TRIAL_BLOCK = 64

EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
BETAS = "nsddata_betas/ppdata/{subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session{session:02d}.hdf5"
ATLAS = "nsddata/ppdata/{subject}/func1pt8mm/roi/HCP_MMP1.nii.gz"
CTAB = "nsddata/freesurfer/fsaverage/label/HCP_MMP1.mgz.ctab"
STIMULI = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
STIM_INFO = "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
CAPTIONS = "nsddata_stimuli/stimuli/nsd/annotations/captions_{split}.json"

LAYOUT_HELP = f"""expected the published NSD layout under the root:
  {EXPDESIGN}
  {BETAS.format(subject='subjNN', session=1)} ... (one per session)
  {ATLAS.format(subject='subjNN')}
  {STIMULI}
  {STIM_INFO} and {CAPTIONS.format(split='{train2017,val2017}')} (text models only)
  {CTAB} (optional: region names; the built-in HCP-MMP1 names are used otherwise)"""


@contextlib.contextmanager
def open_hdf5(path: Path, dataset: str) -> Iterator[Any]:
    """``h5py.File(path)[dataset]``; unreadable (truncated, corrupt) files and reads become a DataError naming the file.

    NSD's betas are ~2 GB per session, so interrupted downloads are common; h5py reports them as a bare OSError.
    """
    import h5py

    fix = ("it may be truncated or corrupt (an interrupted download?): re-download it and compare its size and "
           "checksum with the NSD release")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err}); {fix}") from None
    try:
        if dataset not in handle:
            raise DataError(f"{path}: no dataset {dataset!r} (it has {sorted(handle)}); {fix}")
        yield handle[dataset]
    except OSError as err:
        raise DataError(f"{path}: reading dataset {dataset!r} failed ({err}); {fix}") from None
    finally:
        handle.close()


def stimulus_id(nsd_id: int) -> str:
    """Stimulus id of a 0-based 73k image index, as in Algonauts-2023 file names (``nsd-02950``)."""
    return f"nsd-{int(nsd_id):05d}"


def resolve_root(root: str | os.PathLike | None, env: str, benchmark: str, help_text: str) -> Path:
    """The dataset root from the option or the environment; a clear error when neither points at a folder."""
    value = root if root not in (None, "") else os.environ.get(env)
    if not value:
        raise DataError(f"{benchmark} needs the dataset on disk: pass --benchmark-option root=DIR or set ${env}.\n"
                        f"{help_text}")
    path = Path(value).expanduser()
    if not path.is_dir():
        source = "root=" if root not in (None, "") else f"${env}="
        raise DataError(f"{benchmark}: {source}{path} is not a folder.\n{help_text}")
    return path


def session_list(sessions: int | Sequence[int] | None) -> tuple[int, ...]:
    if sessions is None:
        sessions = PUBLISHED_SESSIONS
    if isinstance(sessions, (int, np.integer)):
        if sessions < 1:
            raise InputError(f"sessions must be at least 1, got {sessions}")
        return tuple(range(1, int(sessions) + 1))
    out = tuple(sorted({int(s) for s in sessions}))
    if not out or out[0] < 1:
        raise InputError(f"sessions must be positive session numbers, got {list(sessions)}")
    return out


def subject_index(subject: str) -> int:
    if not (isinstance(subject, str) and subject.startswith("subj") and subject[4:].isdigit()):
        raise InputError(f"NSD subjects are named subj01..subj08, got {subject!r}")
    return int(subject[4:]) - 1


def read_ctab(path: Path) -> dict[int, str]:
    """FreeSurfer colour table: ``<label> <name> [r g b a]`` per line."""
    names = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].lstrip("-").isdigit():
            names[int(parts[0])] = parts[1]
    return names


class NativeNSD:
    """Loader for one NSD root; ``responses(subject)`` converts (and caches) one subject's betas."""

    layout = "native"
    help = LAYOUT_HELP

    def __init__(self, root: str | os.PathLike | None, *, sessions: int | Sequence[int] | None = None,
                 regions: Sequence[str] | None = None, benchmark: str = "nsd.rbf-cka"):
        self.root = resolve_root(root, ROOT_ENV, benchmark, LAYOUT_HELP)
        self.sessions = session_list(sessions)
        self.wanted_regions = list(regions) if regions is not None else None
        self.benchmark = benchmark

    # --- files -------------------------------------------------------------------------------------------
    def path(self, relative: str) -> Path:
        return self.root / relative

    def require(self, relatives: Sequence[str], what: str) -> None:
        missing = [r for r in relatives if not self.path(r).is_file()]
        if missing:
            listed = "\n  ".join(missing[:8]) + (f"\n  ... and {len(missing) - 8} more" if len(missing) > 8 else "")
            hint = ("; pass --benchmark-option sessions=N (or a list) to use fewer sessions"
                    if any("betas_session" in m for m in missing) else "")
            raise DataError(f"{self.benchmark}: {what} missing under {self.root}:\n  {listed}{hint}\n{LAYOUT_HELP}")

    @functools.cached_property
    def expdesign(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """0-based ``masterordering``, ``subjectim`` and ``sharedix``."""
        from scipy.io import loadmat

        self.require([EXPDESIGN], "the experimental design")
        try:
            mat = loadmat(self.path(EXPDESIGN))
            order = np.asarray(mat["masterordering"]).astype(np.int64).ravel() - 1
            subjectim = np.asarray(mat["subjectim"]).astype(np.int64) - 1
            shared = np.asarray(mat["sharedix"]).astype(np.int64).ravel() - 1
        except (KeyError, ValueError, OSError, NotImplementedError) as err:
            raise DataError(f"{self.path(EXPDESIGN)}: expected a MATLAB file with masterordering, subjectim and "
                            f"sharedix ({type(err).__name__}: {err})") from None
        return order, subjectim, shared

    def betas_file(self, subject: str, session: int) -> Path:
        return self.path(BETAS.format(subject=subject, session=session))

    # --- design --------------------------------------------------------------------------------------------
    def trials_per_session(self, subject: str) -> int:
        counts = set()
        for s in self.sessions:
            with open_hdf5(self.betas_file(subject, s), "betas") as betas:
                counts.add(int(betas.shape[0]))
        if len(counts) != 1:
            raise DataError(f"{self.benchmark}: {subject}'s session files hold different trial counts {sorted(counts)}; "
                            "every NSD session has the same number of trials (750)")
        return counts.pop()

    def trial_images(self, subject: str, trials: int) -> dict[int, np.ndarray]:
        """0-based 73k image id of every trial, per session."""
        order, subjectim, _ = self.expdesign
        row = subject_index(subject)
        if row >= subjectim.shape[0]:
            raise DataError(f"{self.path(EXPDESIGN)}: subjectim has {subjectim.shape[0]} subjects, no {subject}")
        need = max(self.sessions) * trials
        if order.size < need:
            raise DataError(f"{self.path(EXPDESIGN)}: masterordering has {order.size} trials, sessions up to "
                            f"{max(self.sessions)} with {trials} trials each need {need}")
        return {s: subjectim[row, order[(s - 1) * trials: s * trials]] for s in self.sessions}

    def atlas(self, subject: str) -> tuple[np.ndarray, dict[int, str]]:
        """HCP-MMP1 labels in the betas' ``(Z, Y, X)`` order, and label names."""
        import nibabel

        self.require([ATLAS.format(subject=subject)], f"{subject}'s HCP_MMP1 atlas")
        volume = np.asarray(nibabel.load(self.path(ATLAS.format(subject=subject))).get_fdata())
        labels = np.rint(volume).astype(np.int64).transpose(2, 1, 0)
        names = read_ctab(self.path(CTAB)) if self.path(CTAB).is_file() else region_tables.hcp_names()
        return labels, {k: v for k, v in names.items() if k > 0}

    # --- responses -----------------------------------------------------------------------------------------
    def responses(self, subject: str) -> RegionResponses:
        files = [BETAS.format(subject=subject, session=s) for s in self.sessions]
        self.require([EXPDESIGN, ATLAS.format(subject=subject), *files], f"{subject}'s files")
        key = cache_key({"layout": self.layout, "subject": subject, "sessions": self.sessions,
                         "regions": self.wanted_regions,
                         "files": [file_stamp(self.path(f)) for f in (EXPDESIGN, ATLAS.format(subject=subject),
                                                                      *files)],
                         "ctab": file_stamp(self.path(CTAB)) if self.path(CTAB).is_file() else None})
        return build_cached(key, lambda allocate: self._convert(subject, allocate))

    def _convert(self, subject: str, allocate) -> RegionResponses:
        trials = self.trials_per_session(subject)
        per_session = self.trial_images(subject, trials)
        _, _, shared = self.expdesign
        seen = np.unique(np.concatenate(list(per_session.values())))
        is_shared = np.isin(seen, shared)
        ordered = np.concatenate([seen[~is_shared], seen[is_shared]])   # model rows, then shared rows
        row_of = {int(i): r for r, i in enumerate(ordered)}
        labels, names = self.atlas(subject)
        columns, region_names, bounds = region_order(labels.ravel(), names, self.wanted_regions,
                                                     f"{self.path(ATLAS.format(subject=subject))}")
        if not region_names:
            raise DataError(f"{self.path(ATLAS.format(subject=subject))} labels no voxel with a named region")
        sums = allocate((len(ordered), columns.size))
        counts = np.zeros(len(ordered), dtype=np.int64)
        bar = progress.bar(total=len(self.sessions) * trials, unit="trial", desc=f"NSD {subject}: reading betas")
        try:
            for session in self.sessions:
                path = self.betas_file(subject, session)
                with open_hdf5(path, "betas") as betas:
                    if tuple(betas.shape[1:]) != labels.shape:
                        raise DataError(f"{path}: betas of shape {betas.shape} do not match the atlas grid "
                                        f"{labels.shape} (trials, Z, Y, X); are both func1pt8mm?")
                    images = per_session[session]
                    for t0 in range(0, trials, TRIAL_BLOCK):
                        block = np.asarray(betas[t0: t0 + TRIAL_BLOCK]).reshape(-1, labels.size)
                        values = block[:, columns].astype(np.float32) / BETA_SCALE
                        for i, image in enumerate(images[t0: t0 + len(block)]):
                            row = row_of[int(image)]
                            sums[row] += values[i]
                            counts[row] += 1
                        bar.update(len(block))
        finally:
            bar.close()
        for start in range(0, len(ordered), 1024):   # repeat average, in place
            stop = min(start + 1024, len(ordered))
            sums[start:stop] /= counts[start:stop, None].astype(np.float32)
        return RegionResponses(
            subject=subject, array=sums, stimulus_ids=tuple(stimulus_id(i) for i in ordered),
            n_model=int((~is_shared).sum()), regions=region_names, bounds=bounds, nsd_ids=ordered, repeats=counts,
            source=f"NSD {subject} ({self.root}, sessions {self.sessions[0]}-{self.sessions[-1]}, "
                   "betas_fithrf_GLMdenoise_RR func1pt8mm, HCP_MMP1)")

    # --- stimuli -------------------------------------------------------------------------------------------
    def images(self, subject: str, responses: RegionResponses, identifier: str,
               ids: Sequence[str] | None = None) -> StimulusSet:
        """The images of rows ``ids`` (default: the model rows) as PNGs extracted once from ``nsd_stimuli.hdf5``."""
        self.require([STIMULI], "the stimulus images")
        nsd_ids = responses.nsd_ids_of(ids)
        return StimulusSet.from_files(identifier, extract_pngs(self.path(STIMULI), nsd_ids),
                                      ids=[stimulus_id(i) for i in nsd_ids],
                                      metadata={"nsd_id": [int(i) for i in nsd_ids]})

    def captions(self, subject: str, responses: RegionResponses, identifier: str,
                 ids: Sequence[str] | None = None) -> StimulusSet:
        """The first COCO caption of each image of rows ``ids`` (Shen et al.: ``requires_all_caps=False``)."""
        return self.captions_of(responses.nsd_ids_of(ids), identifier)

    def captions_of(self, nsd_ids: Sequence[int], identifier: str) -> StimulusSet:
        self.require([STIM_INFO, CAPTIONS.format(split="train2017"), CAPTIONS.format(split="val2017")],
                     "the captions (text models need them)")
        texts = first_captions(self.path(STIM_INFO), {s: self.path(CAPTIONS.format(split=s))
                                                      for s in ("train2017", "val2017")}, nsd_ids)
        return StimulusSet.from_texts(identifier, texts, ids=[stimulus_id(i) for i in nsd_ids],
                                      metadata={"nsd_id": [int(i) for i in nsd_ids]})


def extract_pngs(hdf5: Path, nsd_ids: Sequence[int]) -> list[Path]:
    """PNG copies of ``imgBrick[i]`` under the data cache, written atomically, keyed on the HDF5 file's identity."""
    from PIL import Image

    folder = config.data_cache_dir() / "nsd_stimuli_png" / cache_key({"stimuli": file_stamp(hdf5)})
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stimulus_id(i)}.png" for i in nsd_ids]
    todo = [(int(i), p) for i, p in zip(nsd_ids, paths) if not p.is_file()]
    if todo:
        with open_hdf5(hdf5, "imgBrick") as brick:                   # (73000, H, W, 3) uint8 images
            for nsd_id, path in progress.bar(todo, desc="extracting NSD images", unit="img"):
                if not 0 <= nsd_id < brick.shape[0]:
                    raise DataError(f"{hdf5}: image {nsd_id} outside 0..{brick.shape[0] - 1}")
                temp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
                Image.fromarray(np.asarray(brick[nsd_id], dtype=np.uint8), mode="RGB").save(temp, format="png")
                os.replace(temp, path)
    return paths


def first_captions(stim_info: Path, annotations: dict[str, Path], nsd_ids: Sequence[int]) -> list[str]:
    """First caption (annotation-file order, as pycocotools returns them) of each 73k image."""
    with open(stim_info, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "cocoId" not in rows[0] or "cocoSplit" not in rows[0]:
        raise DataError(f"{stim_info}: expected columns cocoId and cocoSplit (one row per 73k image)")
    wanted: dict[str, dict[int, int]] = {}
    for nsd_id in nsd_ids:
        if not 0 <= int(nsd_id) < len(rows):
            raise DataError(f"{stim_info}: no row for 73k image {nsd_id}")
        row = rows[int(nsd_id)]
        if "nsdId" in row and row["nsdId"] not in ("", str(int(nsd_id))):
            raise DataError(f"{stim_info}: row {nsd_id} has nsdId {row['nsdId']}; rows must be in 73k order")
        wanted.setdefault(row["cocoSplit"], {})[int(row["cocoId"])] = int(nsd_id)
    captions: dict[int, str] = {}
    for split, coco_ids in wanted.items():
        if split not in annotations:
            raise DataError(f"{stim_info}: unknown cocoSplit {split!r}")
        first = _first_caption_index(str(annotations[split]))
        captions.update({nsd_id: first[coco] for coco, nsd_id in coco_ids.items() if coco in first})
    missing = [int(i) for i in nsd_ids if int(i) not in captions]
    if missing:
        raise DataError(f"no COCO caption found for 73k image(s) {missing[:5]} in {sorted(set(wanted))} annotations")
    return [captions[int(i)] for i in nsd_ids]


@functools.lru_cache(maxsize=2)
def _first_caption_index(path: str) -> dict[int, str]:
    """COCO image id -> its first caption in annotation-file order (parsed once per file and process)."""
    with open(path) as handle:
        annotations = json.load(handle).get("annotations", [])
    first: dict[int, str] = {}
    for ann in annotations:
        first.setdefault(int(ann["image_id"]), str(ann["caption"]))
    return first
