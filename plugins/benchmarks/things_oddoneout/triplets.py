"""Triplet bookkeeping: unique triplets with choice counts, concept-disjoint splits, and unique random triplets.

Every judgment set is reduced to *unique* triplets (concepts sorted ascending) with the number of times each
position was chosen. The cross-entropy averaged over judgments, and the accuracy over judgments, are exactly the
count-weighted sums over unique triplets, so repeated triplets cost nothing extra.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.ridge.functional import kfold_indices


@dataclass(frozen=True)
class TripletCounts:
    """``triplets`` (n, 3) int64 concept rows sorted ascending per row; ``counts`` (n, 3) float: how often each
    position was chosen as the odd one out."""

    triplets: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.triplets)

    @property
    def n_responses(self) -> float:
        return float(self.counts.sum())

    def subset(self, mask_or_index: np.ndarray) -> TripletCounts:
        return TripletCounts(self.triplets[mask_or_index], self.counts[mask_or_index])

    @staticmethod
    def concatenate(parts: list[TripletCounts]) -> TripletCounts:
        return TripletCounts(np.concatenate([p.triplets for p in parts]), np.concatenate([p.counts for p in parts]))


def sort_triplets(triplets: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each triplet ascending and move the chosen position with it."""
    triplets = np.asarray(triplets, dtype=np.int64)
    order = np.argsort(triplets, axis=1, kind="stable")
    ranked = np.take_along_axis(triplets, order, axis=1)
    position = np.argmax(order == np.asarray(choice, dtype=np.int64)[:, None], axis=1)
    return ranked, position


def count_choices(triplets: np.ndarray, choice: np.ndarray) -> TripletCounts:
    """Unique (sorted) triplets with per-position choice counts; presentation orders of a triplet are merged."""
    ranked, position = sort_triplets(triplets, choice)
    unique, inverse = np.unique(ranked, axis=0, return_inverse=True)
    counts = np.zeros((len(unique), 3), dtype=np.float64)
    np.add.at(counts, (inverse.reshape(-1), position), 1.0)
    return TripletCounts(unique, counts)


def one_hot(triplets: np.ndarray, choice: np.ndarray) -> TripletCounts:
    """One response per (already sorted) triplet, e.g. a simulated participant."""
    counts = np.zeros((len(triplets), 3), dtype=np.float64)
    counts[np.arange(len(triplets)), np.asarray(choice, dtype=np.int64)] = 1.0
    return TripletCounts(np.asarray(triplets, dtype=np.int64), counts)


def triplet_keys(triplets: np.ndarray, n_concepts: int) -> np.ndarray:
    """One int64 per sorted triplet (a * M^2 + b * M + c), for membership tests."""
    t = np.sort(np.asarray(triplets, dtype=np.int64), axis=1)
    return (t[:, 0] * n_concepts + t[:, 1]) * n_concepts + t[:, 2]


def within(triplets: np.ndarray, concepts: np.ndarray, n_concepts: int) -> np.ndarray:
    """Mask of triplets whose three concepts all belong to ``concepts``."""
    member = np.zeros(n_concepts, dtype=bool)
    member[np.asarray(concepts, dtype=np.int64)] = True
    return member[triplets].all(axis=1)


# --- splits that reproduce scikit-learn's KFold(shuffle=True) (the ridge metric's kfold_indices) and
# train_test_split exactly ------------------------------------------------------------------------------------


def holdout(items: np.ndarray, test_size: int | float, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) exactly as ``sklearn.model_selection.train_test_split(items, test_size, random_state=seed)``."""
    items = np.asarray(items)
    n = len(items)
    n_test = int(np.ceil(test_size * n)) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < n:
        raise InputError(f"a hold-out of {test_size} leaves no train or no test items out of {n}")
    permutation = np.random.RandomState(seed).permutation(n)
    return items[permutation[n_test:]], items[permutation[:n_test]]


@dataclass(frozen=True)
class ConceptSplit:
    """One fold of the model-recovery simulation: disjoint train, validation and test concepts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def recovery_splits(n_concepts: int, n_folds: int, seed: int) -> list[ConceptSplit]:
    """KFold(n_folds) over concepts; the train+val part split with a validation share K / (5 (K - 1)) of it, as the
    reference code does (865 train / 371 validation concepts per fold for 1854 concepts and K = 3)."""
    splits = []
    for train_val, test in kfold_indices(n_concepts, n_folds, shuffle=True, random_state=seed):
        n_val = round((n_folds / ((n_folds - 1) * 5)) * len(train_val))
        train, val = holdout(train_val, n_val, seed)
        splits.append(ConceptSplit(train, val, test))
    return splits


def sample_unique_triplets(concepts: np.ndarray, n: int, rng: np.random.Generator, exclude: np.ndarray | None,
                           n_concepts: int) -> np.ndarray:
    """``n`` distinct sorted triplets of distinct ``concepts``, none of whose keys is in sorted ``exclude``.

    Rejection sampling in vectorised batches: draw index triples, drop rows with repeated concepts, duplicates of
    accepted triplets and excluded (human) triplets, until ``n`` are accepted.
    """
    concepts = np.unique(np.asarray(concepts, dtype=np.int64))
    m = len(concepts)
    possible = m * (m - 1) * (m - 2) // 6
    blocked = 0
    if exclude is not None and len(exclude):
        member = np.zeros(n_concepts, dtype=bool)
        member[concepts] = True
        blocked = int(member[decode_keys(exclude, n_concepts)].all(axis=1).sum())
    if n > possible - blocked:
        raise InputError(f"cannot draw {n} distinct triplets from {m} concepts ({possible} exist, {blocked} of them "
                         "excluded as human triplets)")
    accepted = np.empty(0, dtype=np.int64)
    while len(accepted) < n:
        need = n - len(accepted)
        draw = rng.integers(0, m, size=(max(2 * need, 1024), 3))
        draw = draw[(draw[:, 0] != draw[:, 1]) & (draw[:, 0] != draw[:, 2]) & (draw[:, 1] != draw[:, 2])]
        keys = triplet_keys(concepts[draw], n_concepts)
        keys = keys[np.sort(np.unique(keys, return_index=True)[1])]          # first occurrence, keep random order
        keys = keys[~np.isin(keys, accepted)]
        if exclude is not None and len(exclude):
            keys = keys[~_member(keys, exclude)]
        accepted = np.concatenate([accepted, keys[:need]])
    return decode_keys(accepted, n_concepts)


def decode_keys(keys: np.ndarray, n_concepts: int) -> np.ndarray:
    """Inverse of :func:`triplet_keys`."""
    a, rest = np.divmod(np.asarray(keys, dtype=np.int64), n_concepts * n_concepts)
    b, c = np.divmod(rest, n_concepts)
    return np.stack([a, b, c], axis=1)


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    position = np.searchsorted(sorted_keys, keys)
    position = np.minimum(position, len(sorted_keys) - 1)
    return sorted_keys[position] == keys

