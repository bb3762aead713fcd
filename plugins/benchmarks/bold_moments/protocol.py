"""The fixed protocol of Höfling et al. (2026) on BOLD Moments: stimulus splits, regions, thresholds, seeds."""
from __future__ import annotations

import numpy as np

from cortexbench.errors import InputError

#: The 19 HCP-MMP1 analysis regions (bilateral), in the order of the issue / the authors' intersubject config.
REGIONS: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V8", "PIT", "FFC", "V3A", "V3B", "V6", "V6A", "V7", "IPS1",
                            "MT", "MST", "FST", "LO1", "LO2", "LO3")
SUBJECTS: tuple[str, ...] = tuple(f"sub-{i:02d}" for i in range(1, 11))

#: Videos left out by the authors (corrupted train clips; test clips excluded in their loader).
EXCLUDED_TRAIN: tuple[str, ...] = ("0258", "0831")
EXCLUDED_TEST: tuple[str, ...] = ("1001", "1085", "1090", "1093", "1094", "1097")
TRAIN_IDS: tuple[str, ...] = tuple(f"{i:04d}" for i in range(1, 1001) if f"{i:04d}" not in EXCLUDED_TRAIN)
TEST_IDS: tuple[str, ...] = tuple(f"{i:04d}" for i in range(1001, 1103) if f"{i:04d}" not in EXCLUDED_TEST)

NCSNR_THRESHOLD = 0.2
SRP_EPS = 0.1
SRP_SEED = 1234
RIDGE_ALPHAS = np.logspace(0, 9, 19)
RIDGE_FOLDS = 5
RIDGE_SEED = 1          # the authors' LinearPredictivity(seed=1) KFold seed
N_PARTNERS = 5          # random partner subjects per target subject for the lower ceiling
PARTNER_SEED = 0
VIDEO_FPS = 4.0
VIDEO_SIZE = 256
VIDEO_FRAMES = 12


def partners(subjects: list[str], n_partners: int = N_PARTNERS, seed: int = PARTNER_SEED) -> dict[str, list[str]]:
    """Random source subjects for each target subject (without itself), as the authors' pairwise launcher."""
    if n_partners >= len(subjects):
        raise InputError(f"n_partners={n_partners} needs more than {n_partners} subjects, got {len(subjects)} "
                         f"({subjects}); lower --benchmark-option n_partners=N")
    rng = np.random.default_rng(seed)
    return {t: sorted(rng.choice([s for s in subjects if s != t], n_partners, replace=False).tolist())
            for t in subjects}
