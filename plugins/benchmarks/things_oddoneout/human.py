"""The human side of both benchmarks: which judgments are fitted, which calibrate, and the noise ceiling."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cortexbench.errors import InputError
from cortexbench.interfaces import Candidate
from cortexbench.stimuli import StimulusSet

from .data import Concepts, Responses, concept_images, load_held_out_triplets, read_published_triplets
from .fitting import SolverSettings
from .lbfgs import LBFGSOptions
from .noise_ceiling import PUBLISHED_CEILING, loo_ceiling
from .triplets import TripletCounts, count_choices, triplet_keys

HELD_OUT_NOTE = ("the 20,000 held-out judgments of the mirror (1000 triplets x ~20 raters, VICE test_triplets.csv)")


@dataclass(frozen=True)
class HumanData:
    """``pool``: judgments the probes are cross-validated on and generators are fitted to; ``calibration``: the
    repeated triplets that give the noise ceiling and calibrate generators' temperatures (on held-out predictions
    where they overlap the pool, as with the mirror's held-out judgments, where they are the pool); ``excluded``:
    sorted keys of every human triplet (synthetic triplets avoid them). Probes re-estimate the ceiling on the
    triplets they test."""

    pool: TripletCounts
    calibration: TripletCounts
    ceiling: float
    ceiling_method: str
    excluded: np.ndarray
    source: str


def load_human(n_concepts: int, triplets: str | None = None, noise_ceiling: float | None = None) -> HumanData:
    """Held-out judgments by default; with ``triplets`` the published OSF table (train pool = ``noise_ceiling``
    code 0, calibration = test set 2)."""
    if triplets is None:
        responses: Responses = load_held_out_triplets()
        pool = calibration = count_choices(responses.triplets, responses.choice)
        source = HELD_OUT_NOTE
    else:
        responses = read_published_triplets(triplets, n_concepts)
        train = responses.select(responses.split == 0)
        test2 = responses.select(responses.split == 2)
        if len(train) == 0:
            raise InputError(f"{triplets}: no rows with noise_ceiling == 0 (the training pool)")
        pool = count_choices(train.triplets, train.choice)
        calibration = count_choices(test2.triplets, test2.choice) if len(test2) else pool
        source = f"{triplets} (pool: noise_ceiling == 0; ceiling and calibration: test set 2)"
    if noise_ceiling is not None:
        if not 1 / 3 < float(noise_ceiling) <= 1:
            raise InputError(f"noise_ceiling must lie in (1/3, 1], got {noise_ceiling}")
        ceiling, method = float(noise_ceiling), f"given as a benchmark option ({float(noise_ceiling):.4f})"
    else:
        ceiling = loo_ceiling(calibration.counts)
        repeated = int((calibration.counts.sum(axis=1) >= 2).sum())
        if np.isfinite(ceiling):
            method = (f"leave-one-out majority accuracy over {repeated} repeated triplets "
                      f"({int(calibration.n_responses)} judgments), ties shared")
        else:
            ceiling = PUBLISHED_CEILING
            method = (f"no repeated triplets in the data: the published THINGS test-set-2 leave-one-out ceiling "
                      f"{PUBLISHED_CEILING}")
    excluded = np.unique(triplet_keys(responses.triplets, n_concepts))
    return HumanData(pool, calibration, ceiling, method, excluded, source)


def concept_stimuli(concepts: Concepts, images: str | None, text_column: str) -> StimulusSet:
    """The 1854 concepts as text (their words) or, with ``images``, one THINGS image each; ids are uniqueIDs."""
    return concept_images(images, concepts) if images else concepts.text_stimuli(text_column)


@dataclass(kw_only=True)
class ThingsOptions:
    """Options both THINGS benchmarks share: where the judgments and stimuli come from, and how fits are solved."""

    triplets: str | None = None
    images: str | None = None
    text_column: str = "Word"
    pooling: str = "avg"
    noise_ceiling: float | None = None
    device: str | None = None
    dtype: str = "float32"
    max_batch: int | None = None
    memory_gb: float | None = None
    lbfgs: dict = field(default_factory=dict)

    def solver_settings(self, candidate: Candidate | None = None) -> SolverSettings:
        """The explicit ``device`` option, else the candidate's device (the scorer's choice), else auto."""
        from cortexbench.device import resolve_device

        device = resolve_device(self.device) if self.device else getattr(candidate, "device", None)
        device = device or resolve_device("auto")
        return SolverSettings(device=device, dtype=self.dtype, max_batch=self.max_batch, memory_gb=self.memory_gb,
                              options=LBFGSOptions(**self.lbfgs))
