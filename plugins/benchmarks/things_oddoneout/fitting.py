"""Fit and score many probe problems on one device: chunked by memory, solved by the batched L-BFGS.

A *problem* is (training triplet set, lambda) for one feature matrix and transform family; every problem of a chunk
is solved at once. Chunks are sized so that the optimiser state (history of ``2 * history_size`` vectors) plus one
batched loss evaluation fit the memory budget (himalaya-style batching knobs: ``max_batch`` problems, or
``memory_gb``; on CUDA the default budget is three quarters of the memory not in use). An eighth of the budget is the
workspace of the objective's chunks of triplets, so an evaluation's memory does not grow with N beyond the triplet
sets themselves. Chunks are of about equal size, so that no small last chunk pays a whole tail of slow problems.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cortexbench import progress
from cortexbench.device import available_memory
from cortexbench.errors import InputError

from .lbfgs import LBFGSOptions, minimize
from .objective import MODES, Transform, TripletBatch, TripletObjective
from .triplets import TripletCounts

DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Share of the memory budget kept for the objective's chunks of triplets (the rest is divided among problems).
WORKSPACE_SHARE = 1 / 8
#: Share of the CUDA memory not in use (free on the device or cached by torch) that the solver plans with by default.
#: Dropping finished problems copies no history (``lbfgs._Problems.compact``), so the peak stays near the plan.
CUDA_BUDGET_SHARE = 0.75


@dataclass(frozen=True)
class SolverSettings:
    device: str = "cpu"
    dtype: str = "float32"
    mode: str = "auto"
    max_batch: int | None = None
    memory_gb: float | None = None
    options: LBFGSOptions = field(default_factory=LBFGSOptions)
    tf32: bool = False           # TF32 matrix products on CUDA (fp32 only): ~8x faster products, ~1e-3 relative error

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.max_batch is not None and self.max_batch < 1:
            raise InputError(f"max_batch must be at least 1, got {self.max_batch}")
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not isinstance(self.tf32, bool):
            raise InputError(f"tf32 must be true or false, got {self.tf32!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def budget_bytes(self) -> float:
        if self.memory_gb is not None:
            return self.memory_gb * 2 ** 30
        if str(self.device).startswith("cuda"):
            return CUDA_BUDGET_SHARE * available_memory(self.device)
        return 2.0 * 2 ** 30


def concepts_used(triplets: TripletCounts) -> int:
    """Distinct concepts a triplet set touches (the rows of ``Z`` its problems embed)."""
    return max(1, int(np.count_nonzero(np.bincount(triplets.triplets.reshape(-1)))) if len(triplets) else 1)


def problem_bytes(objective: TripletObjective, n_used: int, n_triplets: int, settings: SolverSettings,
                  backward: bool = True, sets_per_problem: float = 1.0) -> float:
    """Peak memory of one problem outside the shared workspace: its share of the triplet sets (problems that differ
    only in lambda share one), one loss evaluation (its concept rows, embedding and gradient, and the u x u Gram
    matrices on the ``gram`` path) and, with ``backward``, the optimiser's vectors."""
    transform = objective.transform
    item = torch.finfo(settings.torch_dtype).bits // 8
    data = sets_per_problem * n_triplets * 3 * (8 + item) + objective.features.shape[0] * 8
    embedded = n_used * transform.p * item + (2 if backward else 1) * n_used * transform.k * item
    if objective.path(n_used, n_triplets, backward) == "gram":
        embedded += (3 if backward else 1) * n_used * n_used * item
    if not backward:
        return data + embedded
    penalty = (3 * transform.p * transform.p if transform.kind == "rectangular" else 2 * transform.n_params) * item
    solver = (2 * settings.options.history_size + 12) * transform.n_params * item
    return data + embedded + penalty + solver


def objective_for(features: torch.Tensor, transform: Transform, settings: SolverSettings) -> TripletObjective:
    """The objective with the settings' similarity mode, TF32 choice and workspace (an eighth of the budget)."""
    workspace = WORKSPACE_SHARE * settings.budget_bytes() // (torch.finfo(settings.torch_dtype).bits // 8)
    return TripletObjective(features, transform, mode=settings.mode, workspace=int(workspace), tf32=settings.tf32)


def chunks(n_problems: int, per_problem: float, settings: SolverSettings) -> list[slice]:
    """Consecutive chunks of about equal size, each within the budget and ``max_batch``."""
    size = max(1, int((1 - WORKSPACE_SHARE) * settings.budget_bytes() // max(per_problem, 1.0)))
    if settings.max_batch is not None:
        size = min(size, settings.max_batch)
    count = -(-n_problems // size)
    bounds = [round(i * n_problems / count) for i in range(count + 1)] if n_problems else [0]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _problem_chunks(objective: TripletObjective, sets: Sequence[TripletCounts], set_of_problem: Sequence[int],
                    settings: SolverSettings, backward: bool) -> list[slice]:
    members = set(set_of_problem)
    longest = max(len(sets[i]) for i in members)
    widest = max(concepts_used(sets[i]) for i in members)
    share = len(members) / len(set_of_problem)
    return chunks(len(set_of_problem), problem_bytes(objective, widest, longest, settings, backward, share), settings)


def as_features(features: np.ndarray | torch.Tensor, settings: SolverSettings) -> torch.Tensor:
    """Concept features (concepts, p) on the solver device; NaN or infinite values are an input error."""
    values = np.array(features, dtype=np.float64)
    if values.ndim != 2 or not np.isfinite(values).all():
        raise InputError(f"concept features must be a finite (concepts, features) matrix; got shape {values.shape}"
                         + ("" if values.ndim != 2 else " with NaN or infinite values"))
    return torch.tensor(values, dtype=settings.torch_dtype).to(settings.device)


def fit(features: torch.Tensor, transform: Transform, sets: Sequence[TripletCounts], set_of_problem: Sequence[int],
        lambdas: Sequence[float], settings: SolverSettings, desc: str = "fitting probes") -> torch.Tensor:
    """Solve every problem ``b`` (train on ``sets[set_of_problem[b]]`` with penalty ``lambdas[b]``); returns the
    parameters (B, n_params) on the solver device. The zero-shot transform has nothing to fit."""
    n = len(set_of_problem)
    if len(lambdas) != n:
        raise InputError(f"{n} problems but {len(lambdas)} lambdas")
    dtype = settings.torch_dtype
    if transform.kind == "zero_shot" or n == 0:
        return transform.initial(n, dtype, settings.device)
    objective = objective_for(features, transform, settings)
    parts = _problem_chunks(objective, sets, set_of_problem, settings, backward=True)
    bar = progress.bar(total=n, desc=desc, unit="fit")

    def solve(part: slice) -> torch.Tensor:
        """One chunk, from its data to its solutions (its memory is freed before the next chunk starts)."""
        members = list(set_of_problem[part])
        used = sorted(set(members))
        data = TripletBatch.stack([sets[i] for i in used], dtype, settings.device)
        local = {s: j for j, s in enumerate(used)}
        data_ids = torch.tensor([local[s] for s in members], device=settings.device)
        lams = torch.tensor(list(lambdas[part]), dtype=dtype, device=settings.device)

        def fun(x: torch.Tensor, ids: torch.Tensor):
            return objective.value_and_grad(x, data, data_ids[ids], lams[ids])

        return minimize(fun, transform.initial(len(members), dtype, settings.device), settings.options,
                        on_finish=bar.update).x

    try:
        solutions = [solve(part) for part in parts]
    finally:
        bar.close()
    return torch.cat(solutions)


def correct(features: torch.Tensor, transform: Transform, params: torch.Tensor, sets: Sequence[TripletCounts],
            set_of_problem: Sequence[int], settings: SolverSettings) -> np.ndarray:
    """Correctly predicted judgments of ``params[b]`` on ``sets[set_of_problem[b]]`` (float64, (B,))."""
    n = len(set_of_problem)
    if n == 0:
        return np.zeros(0)
    objective = objective_for(features, transform, settings)
    out = []
    for part in _problem_chunks(objective, sets, set_of_problem, settings, backward=False):
        members = list(set_of_problem[part])
        used = sorted(set(members))
        data = TripletBatch.stack([sets[i] for i in used], settings.torch_dtype, settings.device)
        local = {s: j for j, s in enumerate(used)}
        ids = torch.tensor([local[s] for s in members], device=settings.device)
        out.append(objective.correct(params[part], data, ids).cpu().numpy())
    return np.concatenate(out)
