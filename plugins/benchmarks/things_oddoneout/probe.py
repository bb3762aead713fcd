"""Probing human odd-one-out choices with a transform of a model's concept features, on concept-disjoint folds.

Outer loop (the reference's ``create_partitioned_datasets_THINGS``): ``KFold(n_folds, shuffle, random_state=seed)``
over the concepts; a fold trains on the triplets whose three concepts are all outside its test concepts and tests
on the triplets whose three concepts are all inside (mixed triplets are dropped). Inner loop (ours, see README):
lambda is chosen by ``KFold(inner_folds)`` over the unique training triplets (mean validation accuracy over the
inner folds), then W is refitted on all training triplets of the fold and scored on its test triplets.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cortexbench.errors import InputError

from . import fitting
from .fitting import SolverSettings
from .objective import Transform, TripletObjective, tie_shares
from .triplets import TripletCounts, kfold_indices, within

#: The reference's probe grid (``evaluate_THINGS_OOO_accuracy_CV.yaml``): 1e-6 ... 10.
PROBE_LAMBDAS = tuple(10.0 ** e for e in range(-6, 2))


@dataclass(frozen=True)
class Fold:
    train: TripletCounts
    test: TripletCounts
    test_concepts: np.ndarray


def concept_folds(pool: TripletCounts, n_concepts: int, n_folds: int, seed: int) -> list[Fold]:
    folds = []
    for train_concepts, test_concepts in kfold_indices(n_concepts, n_folds, shuffle=True, random_state=seed):
        train = pool.subset(within(pool.triplets, train_concepts, n_concepts))
        test = pool.subset(within(pool.triplets, test_concepts, n_concepts))
        if len(train) == 0 or len(test) == 0:
            raise InputError(f"concept fold with {len(train)} training and {len(test)} test triplets: too few "
                             f"triplets ({len(pool)}) for {n_folds} concept-disjoint folds")
        folds.append(Fold(train, test, test_concepts))
    return folds


@dataclass
class ProbeResult:
    """One layer, one transform. ``val_accuracy`` is (fold, lambda), NaN for the zero-shot transform."""

    test_correct: np.ndarray
    test_total: np.ndarray
    triplet_correct: np.ndarray         # correct judgments per unique test triplet, folds concatenated in order
    val_accuracy: np.ndarray
    chosen_lambda: np.ndarray
    train_triplets: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(self.test_correct.sum() / self.test_total.sum())

    @property
    def selection_score(self) -> float:
        """Mean inner-validation accuracy at the chosen lambdas (what layers are compared on)."""
        if np.isnan(self.val_accuracy).all():
            return float("nan")
        return float(np.nanmax(self.val_accuracy, axis=1).mean())


def probe(features: torch.Tensor, transform: Transform, folds: Sequence[Fold], lambdas: Sequence[float],
          inner_folds: int, seed: int, settings: SolverSettings, desc: str = "probe") -> ProbeResult:
    n_folds = len(folds)
    totals = np.array([f.test.n_responses for f in folds])
    sizes = np.array([len(f.train) for f in folds])
    if transform.kind == "zero_shot":
        params = transform.initial(n_folds, settings.torch_dtype, settings.device)
        test_correct = fitting.correct(features, transform, params, [f.test for f in folds], range(n_folds), settings)
        return ProbeResult(test_correct, totals, _per_triplet(features, transform, params, folds, settings),
                           np.full((n_folds, len(lambdas)), np.nan), np.full(n_folds, np.nan), sizes)
    inner_sets: list[TripletCounts] = []
    problems: list[tuple[int, int, int]] = []          # (fold, inner fold, lambda index)
    for f, fold in enumerate(folds):
        if len(fold.train) < inner_folds:
            raise InputError(f"fold {f} has {len(fold.train)} training triplets, fewer than inner_folds={inner_folds}")
        inner = kfold_indices(len(fold.train), inner_folds, shuffle=True, random_state=seed)
        for i, (train, val) in enumerate(inner):
            inner_sets += [fold.train.subset(train), fold.train.subset(val)]
            problems += [(f, i, l) for l in range(len(lambdas))]
    set_index = [2 * (f * inner_folds + i) for f, i, _ in problems]
    params = fitting.fit(features, transform, inner_sets, set_index, [lambdas[l] for *_, l in problems], settings,
                         desc=f"{desc}: lambda by inner CV")
    val_correct = fitting.correct(features, transform, params, inner_sets, [s + 1 for s in set_index], settings)
    val_total = np.array([inner_sets[s + 1].n_responses for s in set_index])
    val_accuracy = np.zeros((n_folds, len(lambdas)))
    for (f, _, l), c, t in zip(problems, val_correct, val_total):
        val_accuracy[f, l] += (c / t) / inner_folds
    best = val_accuracy.argmax(axis=1)
    refit = fitting.fit(features, transform, [f.train for f in folds], range(n_folds), [lambdas[b] for b in best],
                        settings, desc=f"{desc}: refit")
    test_correct = fitting.correct(features, transform, refit, [f.test for f in folds], range(n_folds), settings)
    return ProbeResult(test_correct, totals, _per_triplet(features, transform, refit, folds, settings), val_accuracy,
                       np.asarray(lambdas, dtype=float)[best], sizes)


def _per_triplet(features, transform, params, folds, settings) -> np.ndarray:
    return np.concatenate([triplet_correct(features, transform, params[f:f + 1], fold.test, settings)
                           for f, fold in enumerate(folds)])


def triplet_correct(features: torch.Tensor, transform: Transform, params: torch.Tensor, triplets: TripletCounts,
                    settings: SolverSettings) -> np.ndarray:
    """Correct judgments of one fit ``params`` (1, n_params) on each unique triplet (float64, (n,)); tied maxima
    share the credit, as in :meth:`TripletObjective.correct` (the triplet bootstrap resamples these)."""
    objective = TripletObjective(features, transform, mode=settings.mode)
    index = torch.as_tensor(triplets.triplets, device=settings.device)[None]
    with torch.no_grad():
        shares = tie_shares(objective.logits(params, index)[0]).double().cpu().numpy()
    return (triplets.counts * shares).sum(axis=-1)


def zero_shot_correct(features: torch.Tensor, pool: TripletCounts, settings: SolverSettings) -> np.ndarray:
    """Correct judgments of W = I on each unique triplet of ``pool`` (float64, (n,)), for split-half layer choice."""
    transform = Transform.make("zero_shot", features.shape[1])
    return triplet_correct(features, transform, transform.initial(1, settings.torch_dtype, settings.device), pool,
                           settings)
