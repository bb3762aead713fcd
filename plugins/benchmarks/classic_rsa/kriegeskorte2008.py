"""Kriegeskorte et al. 2008 data: the 92 object images and human/monkey IT RDMs (rsatoolbox's copies)."""
from __future__ import annotations

import functools

import numpy as np
from scipy.spatial.distance import squareform

from cortexbench.data import resolve
from cortexbench.errors import DataError
from cortexbench.stimuli import StimulusSet

from . import KRIEGESKORTE2008 as DATASET
from .rdm_benchmark import BrainRDMs

SUPPLEMENT = "Kriegeskorte_Neuron2008_supplementalData.mat"
BRAIN = "92_brainRDMs.mat"
N_STIMULI = 92
STIMULUS_IDS = tuple(f"kriegeskorte2008_{i:02d}" for i in range(1, N_STIMULI + 1))


@functools.lru_cache(maxsize=4)
def _loadmat(name: str) -> dict:
    from scipy.io import loadmat

    path = resolve(DATASET, name)
    try:
        return loadmat(path)
    except Exception as err:  # noqa: BLE001 - scipy raises several types for unreadable files
        raise DataError(f"cannot read {path} as a MATLAB file ({type(err).__name__}: {err})") from err


def stimuli() -> StimulusSet:
    """The 92 images (175 x 175, grey background) with their category, in the RDMs' stimulus order."""
    records = _loadmat(SUPPLEMENT)["stimuli_92objs"][0]
    if len(records) != N_STIMULI:
        raise DataError(f"{SUPPLEMENT}: expected {N_STIMULI} stimuli, found {len(records)}")
    images = [np.asarray(r["image"], dtype=np.uint8) for r in records]
    categories = [str(np.asarray(r["category"]).ravel()[0]) for r in records]
    animate = [int(np.asarray(r["human"]).ravel()[0] or np.asarray(r["animal"]).ravel()[0]) for r in records]
    return StimulusSet.from_arrays("kriegeskorte2008", images, STIMULUS_IDS,
                                   metadata={"category": categories, "animate": animate})


def human_it() -> BrainRDMs:
    """Human IT (316 voxels): 4 subjects, each the mean of its 2 sessions' RDMs."""
    rdms = _loadmat(BRAIN)["RDMs"]
    if rdms.shape != (1, 4, 2):
        raise DataError(f"{BRAIN}: expected an RDMs struct of shape (1, 4, 2) [1, subject, session], got {rdms.shape}")
    subjects, per_subject = [], []
    for s in range(4):
        sessions = [np.asarray(rdms[0, s, k]["RDM"], dtype=np.float64) for k in range(2)]
        name = str(np.asarray(rdms[0, s, 0]["name"]).ravel()[0])  # 'hIT | BE | Session: 1'
        subjects.append(name.split("|")[1].strip() if "|" in name else f"subject{s + 1}")
        per_subject.append(np.mean(sessions, axis=0))
    return BrainRDMs("IT", np.stack(per_subject), tuple(subjects), STIMULUS_IDS, source=BRAIN)


def monkey_it() -> BrainRDMs:
    """Monkey IT (674 neurons, two animals pooled): one RDM from the paper's figure 1."""
    record = _loadmat(SUPPLEMENT)["RDMs_mIT_hIT_fig1"][0, 0]
    vector = np.asarray(record["RDM"], dtype=np.float64).ravel()
    if vector.size != N_STIMULI * (N_STIMULI - 1) // 2:
        raise DataError(f"{SUPPLEMENT}: mIT RDM has {vector.size} entries, expected {N_STIMULI * 91 // 2}")
    return BrainRDMs("IT", squareform(vector)[None], ("monkey",), STIMULUS_IDS, source=SUPPLEMENT)
