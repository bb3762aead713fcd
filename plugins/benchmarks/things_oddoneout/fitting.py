"""Fit and score many probe problems on one device: chunked by memory, solved by the batched L-BFGS.

A *problem* is (training triplet set, lambda) for one feature matrix and transform family; every problem of a chunk
is solved at once. Chunks are sized so that the optimiser state (history of ``2 * history_size`` vectors) plus one
batched loss evaluation fit the memory budget (himalaya-style batching knobs: ``max_batch`` problems, or
``memory_gb``; on CUDA the default budget is half the free device memory).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cortexbench import progress
from cortexbench.errors import InputError

from .lbfgs import LBFGSOptions, minimize
from .objective import Transform, TripletBatch, TripletObjective
from .triplets import TripletCounts

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class SolverSettings:
    device: str = "cpu"
    dtype: str = "float32"
    mode: str = "auto"
    max_batch: int | None = None
    memory_gb: float | None = None
    options: LBFGSOptions = field(default_factory=LBFGSOptions)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.max_batch is not None and self.max_batch < 1:
            raise InputError(f"max_batch must be at least 1, got {self.max_batch}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def budget_bytes(self) -> float:
        if self.memory_gb is not None:
            return self.memory_gb * 2 ** 30
        if str(self.device).startswith("cuda"):
            free, _ = torch.cuda.mem_get_info(torch.device(self.device))
            return 0.5 * free
        return 2.0 * 2 ** 30


def problem_bytes(transform: Transform, n_concepts: int, n_triplets: int, settings: SolverSettings) -> float:
    """Rough peak memory of one problem: optimiser vectors plus one loss-and-gradient evaluation."""
    item = torch.finfo(settings.torch_dtype).bits // 8
    solver = (2 * settings.options.history_size + 12) * transform.n_params * item
    per_triplet = 3 * 8 * 3 + 3 * item * 8
    gram = settings.mode == "gram" or (settings.mode == "auto" and 3 * n_triplets * transform.k > n_concepts ** 2)
    if gram:
        evaluation = 3 * n_concepts * n_concepts * item + 3 * n_concepts * transform.k * item
    else:
        evaluation = 4 * 3 * n_triplets * max(transform.k, transform.p) * item
    return solver + evaluation + n_triplets * per_triplet


def chunks(n_problems: int, per_problem: float, settings: SolverSettings) -> list[slice]:
    size = max(1, int(settings.budget_bytes() // max(per_problem, 1.0)))
    if settings.max_batch is not None:
        size = min(size, settings.max_batch)
    return [slice(start, min(start + size, n_problems)) for start in range(0, n_problems, size)]


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
    objective = TripletObjective(features, transform, mode=settings.mode)
    longest = max(len(sets[i]) for i in set_of_problem)
    parts = chunks(n, problem_bytes(transform, features.shape[0], longest, settings), settings)
    solutions = []
    bar = progress.bar(total=n, desc=desc, unit="fit")
    try:
        for part in parts:
            members = list(set_of_problem[part])
            used = sorted(set(members))
            data = TripletBatch.stack([sets[i] for i in used], dtype, settings.device)
            local = {s: j for j, s in enumerate(used)}
            data_ids = torch.tensor([local[s] for s in members], device=settings.device)
            lams = torch.tensor(list(lambdas[part]), dtype=dtype, device=settings.device)

            def fun(x: torch.Tensor, ids: torch.Tensor):
                return objective.value_and_grad(x, data, data_ids[ids], lams[ids])

            result = minimize(fun, transform.initial(len(members), dtype, settings.device), settings.options,
                              on_finish=bar.update)
            solutions.append(result.x)
    finally:
        bar.close()
    return torch.cat(solutions)


def correct(features: torch.Tensor, transform: Transform, params: torch.Tensor, sets: Sequence[TripletCounts],
            set_of_problem: Sequence[int], settings: SolverSettings) -> np.ndarray:
    """Correctly predicted judgments of ``params[b]`` on ``sets[set_of_problem[b]]`` (float64, (B,))."""
    n = len(set_of_problem)
    if n == 0:
        return np.zeros(0)
    objective = TripletObjective(features, transform, mode=settings.mode)
    longest = max(len(sets[i]) for i in set_of_problem)
    per = problem_bytes(transform, features.shape[0], longest, settings) - (
        (2 * settings.options.history_size + 12) * transform.n_params * torch.finfo(settings.torch_dtype).bits // 8)
    out = []
    for part in chunks(n, per, settings):
        members = list(set_of_problem[part])
        used = sorted(set(members))
        data = TripletBatch.stack([sets[i] for i in used], settings.torch_dtype, settings.device)
        local = {s: j for j, s in enumerate(used)}
        ids = torch.tensor([local[s] for s in members], device=settings.device)
        out.append(objective.correct(params[part], data, ids).cpu().numpy())
    return np.concatenate(out)
