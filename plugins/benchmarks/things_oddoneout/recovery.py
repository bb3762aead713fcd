"""Model recovery (Avitan & Golan 2025): can refitting candidates on synthetic judgments identify their generator?

1. **Generators.** Each generating model's transform W is fitted to the human judgments (lambda by
   ``KFold(5, shuffle, random_state=42)`` over the unique human triplets, then refitted on all of them), and its
   temperature T calibrated so that its mean max-probability on the repeated (calibration) triplets equals the
   human noise ceiling, on held-out predictions: a calibration triplet that the fit saw is predicted by the CV
   fold fit (at the chosen lambda) that left it out (cross-fitting; :func:`fit_generator`).
2. **Synthetic data**, per training size N and seed: ``KFold(3, shuffle, random_state=seed)`` over the concepts; the
   train+val concepts of a fold are split into 865 train / 371 validation concepts (``train_test_split``,
   ``random_state=seed``); N unique random triplets are drawn among the train concepts and N/8 among the validation
   and among the test concepts, none of them a human triplet. The same triplets serve every generator; each
   generator answers every triplet once, sampling from its calibrated choice probabilities.
3. **Candidates** (the generators included) are refitted from scratch at T = 1 for every lambda of the grid on each
   fold's training triplets; lambda is chosen by the mean validation accuracy over the folds and the candidate is
   scored by the mean test accuracy over the folds at that lambda. The best-scoring candidate is "recovered".

Every (generator, seed, fold, lambda) fit of one candidate is solved in one batched L-BFGS run (chunked by memory).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cortexbench import progress
from cortexbench.errors import InputError

from . import fitting
from .calibration import calibrate_temperature
from .fitting import SolverSettings
from .human import HumanData
from .objective import Transform, TripletObjective, tie_shares
from .triplets import (TripletCounts, kfold_indices, one_hot, recovery_splits, sample_unique_triplets,
                       triplet_keys)

CANDIDATE_LAMBDAS = tuple(10.0 ** e for e in range(-6, 5))    # run_simulations.yaml: 1e-6 ... 1e4
GENERATOR_LAMBDAS = tuple(10.0 ** e for e in range(-6, 3))    # create_data_generating_models.yaml: 1e-6 ... 100
PAPER_N_TRAIN = tuple(50 * 2 ** i for i in range(17)) + (4_200_000,)   # 50, 100, ..., 3,276,800, 4,200,000


@dataclass
class Generator:
    name: str
    transform: Transform
    params: torch.Tensor
    temperature: float
    lam: float
    human_accuracy: float
    cv_accuracy: float


def fit_generator(name: str, features: torch.Tensor, transform: Transform, human: HumanData,
                  lambdas: Sequence[float], n_folds: int, seed: int, settings: SolverSettings,
                  calibration: str = "cross_fit") -> Generator:
    """Fit W to the human pool (lambda by KFold over its unique triplets, refit on all) and calibrate T.

    ``calibration="cross_fit"`` (default) calibrates T on held-out predictions: a calibration triplet that is in the
    pool is predicted by the CV fold model (at the chosen lambda) that did not train on it, any other by the full
    fit. The reference code fits W on the training pool and calibrates on test set 2, which it never trained on;
    cross-fitting keeps that separation when the pool and the calibration triplets overlap (the mirror's 20,000
    held-out judgments are both). ``"in_sample"`` calibrates the full fit on its own training triplets, which
    over-fitting makes over-confident; it exists to show that bias (tests).
    """
    if calibration not in ("cross_fit", "in_sample"):
        raise InputError(f"calibration must be 'cross_fit' or 'in_sample', got {calibration!r}")
    pool = human.pool
    held_out = None
    if transform.kind == "zero_shot":
        params, lam = transform.initial(1, settings.torch_dtype, settings.device), float("nan")
        cv = float(fitting.correct(features, transform, params, [pool], [0], settings)[0] / pool.n_responses)
    else:
        if len(pool) < n_folds:
            raise InputError(f"{len(pool)} human triplets cannot be split into {n_folds} folds")
        folds = kfold_indices(len(pool), n_folds, shuffle=True, random_state=seed)
        sets, problems = [], []
        for f, (train, val) in enumerate(folds):
            sets += [pool.subset(train), pool.subset(val)]
            problems += [(f, l) for l in range(len(lambdas))]
        cv_params = fitting.fit(features, transform, sets, [2 * f for f, _ in problems],
                                [lambdas[l] for _, l in problems], settings, desc=f"generator {name}: lambda by CV")
        right = fitting.correct(features, transform, cv_params, sets, [2 * f + 1 for f, _ in problems], settings)
        val = np.zeros(len(lambdas))
        for (f, l), c in zip(problems, right):
            val[l] += c / sets[2 * f + 1].n_responses / n_folds
        best = int(np.argmax(val))
        lam, cv = float(lambdas[best]), float(val.max())
        params = fitting.fit(features, transform, [pool], [0], [lam], settings, desc=f"generator {name}: fit")
        if calibration == "cross_fit":
            held_out = (cv_params[[problems.index((f, best)) for f in range(n_folds)]], [v for _, v in folds])
    logits = calibration_logits(features, transform, params[0], human, settings, held_out)
    weights = human.calibration.counts.sum(axis=1)
    temperature = calibrate_temperature(logits, weights, human.ceiling)
    shares = tie_shares(torch.as_tensor(logits)).numpy()
    right = float((human.calibration.counts * shares).sum())
    return Generator(name, transform, params[0], temperature, lam, right / human.calibration.n_responses, cv)


def calibration_logits(features: torch.Tensor, transform: Transform, params: torch.Tensor, human: HumanData,
                       settings: SolverSettings, held_out: tuple[torch.Tensor, list[np.ndarray]] | None = None
                       ) -> np.ndarray:
    """Logits (n, 3) at T = 1 on the calibration triplets: of ``params`` (the full fit), except that with
    ``held_out = (fold_params, fold_validation_indices)`` a calibration triplet found in the pool's validation fold
    f is predicted by ``fold_params[f]``, the fit that did not see it."""
    objective = TripletObjective(features, transform, mode=settings.mode)
    calibration = human.calibration
    which = np.full(len(calibration), -1)
    candidates = [params[None]]
    if held_out is not None:
        fold_params, fold_rows = held_out
        n = int(max(calibration.triplets.max(), human.pool.triplets.max())) + 1
        keys = triplet_keys(calibration.triplets, n)
        for f, rows in enumerate(fold_rows):
            which[np.isin(keys, triplet_keys(human.pool.triplets[rows], n))] = f
        candidates.append(fold_params)
    all_params = torch.cat(candidates)                                  # row 0: full fit; row 1 + f: fold f
    index = torch.as_tensor(calibration.triplets, device=settings.device)
    out = np.empty((len(calibration), 3))
    with torch.no_grad():
        for row in np.unique(which):
            mask = which == row
            logits = objective.logits(all_params[row + 1][None], index[torch.as_tensor(mask)][None])[0]
            out[mask] = logits.double().cpu().numpy()
    return out


def simulate(generator: Generator, features: torch.Tensor, triplets: np.ndarray, seed: Sequence[int],
             settings: SolverSettings) -> np.ndarray:
    """One simulated judgment per (sorted) triplet, drawn from the generator's calibrated probabilities."""
    objective = TripletObjective(features, generator.transform, mode=settings.mode)   # cheap: no copies
    choices = []
    rng = np.random.default_rng(list(seed))
    step = max(1, int(2 ** 22))
    for start in range(0, len(triplets), step):
        index = torch.as_tensor(triplets[start:start + step], device=settings.device).unsqueeze(0)
        probs = objective.probabilities(generator.params[None], index, generator.temperature)[0].double().cpu().numpy()
        u = rng.random(len(probs))[:, None]
        choices.append((u > np.cumsum(probs, axis=1)[:, :2]).sum(axis=1))
    return np.concatenate(choices)


@dataclass(frozen=True)
class SyntheticTriplets:
    """The triplets of one (N, seed): per fold, train / validation / test triplet arrays (sorted rows)."""

    n_train: int
    seed: int
    folds: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


def draw_triplets(n_train: int, seed: int, n_concepts: int, excluded: np.ndarray, n_folds: int = 3
                  ) -> SyntheticTriplets:
    n_eval = max(1, round(n_train / 8))
    folds = []
    for f, split in enumerate(recovery_splits(n_concepts, n_folds, seed)):
        parts = []
        for s, (concepts, n) in enumerate(((split.train, n_train), (split.val, n_eval), (split.test, n_eval))):
            rng = np.random.default_rng([seed, n_train, f, s])
            parts.append(sample_unique_triplets(concepts, n, rng, excluded, n_concepts))
        folds.append(tuple(parts))
    return SyntheticTriplets(n_train, seed, tuple(folds))


@dataclass
class RecoveryResult:
    """Arrays over (generator, candidate, n_train, seed, transform); generators are a subset of candidates."""

    generators: list[str]
    candidates: list[str]
    n_train: list[int]
    seeds: list[int]
    transforms: list[str]
    test_accuracy: np.ndarray
    val_accuracy: np.ndarray
    chosen_lambda: np.ndarray
    generator_lambda: np.ndarray          # (generator, transform)
    generator_temperature: np.ndarray
    generator_human_accuracy: np.ndarray
    generator_cv_accuracy: np.ndarray
    feature_dims: dict[str, int]


def run_recovery(features: Mapping[str, np.ndarray], generators: Sequence[str], human: HumanData,
                 transforms: Sequence[str], n_train: Sequence[int], seeds: Sequence[int], settings: SolverSettings, *,
                 lambdas: Sequence[float] = CANDIDATE_LAMBDAS, generator_lambdas: Sequence[float] = GENERATOR_LAMBDAS,
                 generator_folds: int = 5, generator_seed: int = 42, rectangular_k: int = 30, n_folds: int = 3,
                 triplets_in_memory: float = 5e7, desc: str = "recovery") -> RecoveryResult:
    candidates = list(features)
    missing = [g for g in generators if g not in features]
    if missing:
        raise InputError(f"generators {missing} are not among the candidates {candidates}")
    n_concepts = next(iter(features.values())).shape[0]
    shape = (len(generators), len(candidates), len(n_train), len(seeds), len(transforms))
    test = np.full(shape, np.nan)
    val = np.full(shape, np.nan)
    chosen = np.full(shape, np.nan)
    gen_shape = (len(generators), len(transforms))
    gen_lambda, gen_temp, gen_acc, gen_cv = (np.full(gen_shape, np.nan) for _ in range(4))
    x = {name: fitting.as_features(values, settings) for name, values in features.items()}
    fitted: dict[tuple[int, int], Generator] = {}
    for t, kind in enumerate(transforms):
        for g, name in enumerate(generators):
            gen = fit_generator(name, x[name], Transform.make(kind, x[name].shape[1], rectangular_k), human,
                                generator_lambdas, generator_folds, generator_seed, settings)
            fitted[g, t] = gen
            gen_lambda[g, t], gen_temp[g, t] = gen.lam, gen.temperature
            gen_acc[g, t], gen_cv[g, t] = gen.human_accuracy, gen.cv_accuracy
    bar = progress.bar(total=len(n_train) * len(seeds), desc=f"{desc}: (N, seed)", unit="sim")
    try:
        for n_index, n in enumerate(n_train):
            per_seed = len(generators) * n_folds * 1.25 * n
            group = max(1, min(len(seeds), int(triplets_in_memory // max(per_seed, 1))))
            for first in range(0, len(seeds), group):
                chunk = list(range(first, min(first + group, len(seeds))))
                drawn = [draw_triplets(int(n), int(seeds[s]), n_concepts, human.excluded, n_folds) for s in chunk]
                for t, kind in enumerate(transforms):
                    sets, keys = _simulated_sets(fitted, t, generators, drawn, x, settings)
                    for c, name in enumerate(candidates):
                        transform = Transform.make(kind, x[name].shape[1], rectangular_k)
                        acc_val, acc_test = _refit(x[name], transform, sets, keys, lambdas, settings,
                                                   f"{desc}: N={n} {kind} {name}")
                        mean_val, mean_test = acc_val.mean(axis=2), acc_test.mean(axis=2)   # over folds
                        best = mean_val.argmax(axis=2)                                      # (generator, seed)
                        rows = np.arange(len(generators))[:, None]
                        cols = np.arange(len(chunk))[None, :]
                        test[:, c, n_index, chunk, t] = mean_test[rows, cols, best]
                        val[:, c, n_index, chunk, t] = mean_val[rows, cols, best]
                        chosen[:, c, n_index, chunk, t] = (np.asarray(lambdas)[best] if kind != "zero_shot"
                                                           else np.nan)
                bar.update(len(chunk))
    finally:
        bar.close()
    return RecoveryResult(list(generators), candidates, [int(n) for n in n_train], [int(s) for s in seeds],
                          list(transforms), test, val, chosen, gen_lambda, gen_temp, gen_acc, gen_cv,
                          {name: int(v.shape[1]) for name, v in x.items()})


def _simulated_sets(fitted, t, generators, drawn: list[SyntheticTriplets], x, settings):
    """Responses of every generator to the drawn triplets; ``keys[(g, s, f)] = (train, val, test)`` set indices."""
    sets: list[TripletCounts] = []
    keys: dict[tuple[int, int, int], tuple[int, int, int]] = {}
    for g, name in enumerate(generators):
        gen = fitted[g, t]
        for s, synthetic in enumerate(drawn):
            for f, parts in enumerate(synthetic.folds):
                index = []
                for p, triplets in enumerate(parts):
                    seed = (synthetic.seed, synthetic.n_train, f, p, g, t, 7)
                    sets.append(one_hot(triplets, simulate(gen, x[name], triplets, seed, settings)))
                    index.append(len(sets) - 1)
                keys[g, s, f] = tuple(index)
    return sets, keys


def _refit(features, transform, sets, keys, lambdas, settings, desc):
    """Validation and test accuracy (generator, seed, fold, lambda) of one candidate on every simulated dataset."""
    n_gen = 1 + max(k[0] for k in keys)
    n_seed = 1 + max(k[1] for k in keys)
    n_fold = 1 + max(k[2] for k in keys)
    grid = [0] if transform.kind == "zero_shot" else list(range(len(lambdas)))
    problems = [(g, s, f, l) for (g, s, f) in sorted(keys) for l in grid]
    lam = [0.0 if transform.kind == "zero_shot" else lambdas[l] for *_, l in problems]
    params = fitting.fit(features, transform, sets, [keys[g, s, f][0] for g, s, f, _ in problems], lam, settings,
                         desc=desc)
    out = []
    for split in (1, 2):
        which = [keys[g, s, f][split] for g, s, f, _ in problems]
        right = fitting.correct(features, transform, params, sets, which, settings)
        acc = np.full((n_gen, n_seed, n_fold, len(lambdas)), -np.inf)
        for (g, s, f, l), c, w in zip(problems, right, which):
            value = c / sets[w].n_responses
            if transform.kind == "zero_shot":
                acc[g, s, f, :] = value        # nothing to choose: every "lambda" is the same fit
            else:
                acc[g, s, f, l] = value
        out.append(acc)
    return out[0], out[1]
