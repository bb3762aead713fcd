"""THINGS odd-one-out probe benchmarks: how well a model's concept features, through a transform, predict people.

Headline: test accuracy over judgments (pooled over the concept-disjoint folds) of the layer chosen without looking
at test data (mean inner-validation accuracy; zero-shot: split halves of the triplets), divided by the leave-one-out
noise ceiling of the same tested triplets; error and interval from a bootstrap over the tested triplets (each with
all its judgments), which re-estimates accuracy and ceiling together.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from cortexbench import assembly, progress
from cortexbench.errors import InputError
from cortexbench.interfaces import Candidate

from .data import N_CONCEPTS, load_concepts
from .fitting import as_features
from .human import ThingsOptions, concept_stimuli, load_human
from .noise_ceiling import ceiled_accuracy_bootstrap, loo_ceiling
from .objective import Transform
from .probe import PROBE_LAMBDAS, Fold, ProbeResult, concept_folds, probe, zero_shot_correct
from .triplets import TripletCounts

METRIC = "oddoneout-accuracy"
METRIC_VERSION = "1"


@dataclass
class ThingsProbeBenchmark(ThingsOptions):
    identifier: str
    version: str
    transform: str
    layers: Sequence[str] | None = None
    lambdas: Sequence[float] = PROBE_LAMBDAS
    rectangular_k: int = 30
    n_folds: int = 3
    inner_folds: int = 5
    seed: int = 42
    n_bootstrap: int = 2000

    metric = METRIC

    def __post_init__(self) -> None:
        Transform.make(self.transform, 2, self.rectangular_k)          # validates the name
        if not self.lambdas or any(float(l) < 0 for l in self.lambdas):
            raise InputError(f"{self.identifier}: lambdas must be a non-empty list of non-negative numbers")
        self.lambdas = tuple(float(l) for l in self.lambdas)
        if int(self.n_bootstrap) < 100:
            raise InputError(f"{self.identifier}: n_bootstrap must be at least 100, got {self.n_bootstrap}")

    def __call__(self, candidate: Candidate) -> xr.Dataset:
        concepts = load_concepts()
        human = load_human(N_CONCEPTS, self.triplets, self.noise_ceiling)
        stimuli = concept_stimuli(concepts, self.images, self.text_column)
        layer_names = list(self.layers) if self.layers else [layer.name for layer in candidate.layers]
        info = {layer.name: layer for layer in candidate.layers}
        settings = self.solver_settings(candidate)
        features = candidate.activations(stimuli, layer_names, pooling=self.pooling)
        folds = concept_folds(human.pool, N_CONCEPTS, self.n_folds, self.seed)
        results: list[ProbeResult] = []
        zero_shot: list[np.ndarray] = []
        for name in progress.bar(layer_names, desc=f"{self.identifier}: layers"):
            x = as_features(features[name].values, settings)
            transform = Transform.make(self.transform, x.shape[1], self.rectangular_k)
            results.append(probe(x, transform, folds, self.lambdas, self.inner_folds, self.seed, settings,
                                 desc=f"{name}"))
            zero_shot.append(zero_shot_correct(x, human.pool, settings))
        return self._assemble(candidate, stimuli, human, folds, layer_names, info, results, np.stack(zero_shot))

    # --- layer choice and the assembly -----------------------------------------------------------------------
    def _zero_shot_headline(self, zero_shot: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Correct judgments per triplet, each half of the triplets scored with the layer best on the other half."""
        if zero_shot.shape[0] == 1:
            return zero_shot[0], [0, 0]
        order = np.random.default_rng(self.seed).permutation(zero_shot.shape[1])
        halves = [order[: len(order) // 2], order[len(order) // 2:]]
        correct, chosen = np.zeros(zero_shot.shape[1]), []
        for pick, score in ((halves[0], halves[1]), (halves[1], halves[0])):
            best = int(np.argmax(zero_shot[:, pick].sum(axis=1)))
            chosen.append(best)
            correct[score] = zero_shot[best, score]
        return correct, chosen

    def _ceiling(self, human, tested: TripletCounts) -> tuple[float | None, float, str]:
        """(fixed ceiling or None when it is re-estimated per bootstrap resample, point value, method)."""
        if self.noise_ceiling is None:
            value = loo_ceiling(tested.counts)
            if np.isfinite(value):
                repeated = tested.counts.sum(axis=1) >= 2
                return None, value, (f"leave-one-out majority accuracy over the {int(repeated.sum())} repeated "
                                     f"triplets that are tested ({int(tested.counts[repeated].sum())} judgments), "
                                     "ties shared")
            return human.ceiling, human.ceiling, f"{human.ceiling_method} (the tested triplets have no repeats)"
        return human.ceiling, human.ceiling, human.ceiling_method

    def _assemble(self, candidate, stimuli, human, outer_folds: list[Fold], layer_names, info, results,
                  zero_shot) -> xr.Dataset:
        total = human.pool.counts.sum(axis=1)
        n_folds = len(results[0].test_total)
        fold_acc = np.stack([r.test_correct / r.test_total for r in results])
        layer_coords = {"layer": layer_names, "depth": ("layer", [info[n].depth for n in layer_names]),
                        "depth_bin": ("layer", [info[n].depth_bin for n in layer_names])}
        folds = np.arange(n_folds)
        if self.transform == "zero_shot":
            per_triplet, chosen = self._zero_shot_headline(zero_shot)
            tested = human.pool
            selected = "|".join(dict.fromkeys(layer_names[c] for c in chosen))
            selection = ("all judgments; with several layers, each random half of the triplets is scored with "
                         f"the layer most accurate on the other half (seed {self.seed})")
        else:
            best = int(np.argmax([r.selection_score for r in results]))
            per_triplet = results[best].triplet_correct
            tested = TripletCounts.concatenate([f.test for f in outer_folds])
            selected = layer_names[best]
            selection = ("layer with the best mean inner-validation accuracy; test judgments of the "
                         f"{n_folds} concept-disjoint folds pooled")
        k, n = float(per_triplet.sum()), float(tested.n_responses)
        accuracy = k / n
        fixed, ceiling, ceiling_method = self._ceiling(human, tested)
        boot = ceiled_accuracy_bootstrap(per_triplet, tested.counts, fixed, n_bootstrap=int(self.n_bootstrap),
                                         random_state=self.seed)
        variables = {
            "accuracy": xr.DataArray(accuracy, attrs={"description": "headline accuracy over judgments, not ceiled"}),
            "ci_low": float(boot.low), "ci_high": float(boot.high),
            "n_judgments": xr.DataArray(n, attrs={"description": "judgments behind the headline accuracy"}),
            "n_test_triplets": xr.DataArray(len(tested), attrs={"description": "unique triplets behind the headline "
                                                                             "accuracy and the ceiling"}),
            "triplet_correct": xr.DataArray(per_triplet, dims="test_triplet",
                                            attrs={"description": "headline correct judgments per unique tested "
                                                                  "triplet (what the bootstrap resamples)"}),
            "test_correct": xr.DataArray(np.stack([r.test_correct for r in results]), dims=("layer", "fold"),
                                         coords={**layer_coords, "fold": folds}),
            "test_total": xr.DataArray(results[0].test_total, dims="fold", coords={"fold": folds}),
            "train_triplets": xr.DataArray(results[0].train_triplets, dims="fold", coords={"fold": folds},
                                           attrs={"description": "unique training triplets per fold"}),
            "val_accuracy": xr.DataArray(np.stack([r.val_accuracy for r in results]), dims=("layer", "fold", "lambda"),
                                         coords={**layer_coords, "fold": folds, "lambda": list(self.lambdas)},
                                         attrs={"description": "mean inner-CV validation accuracy per lambda"}),
            "chosen_lambda": xr.DataArray(np.stack([r.chosen_lambda for r in results]), dims=("layer", "fold"),
                                          coords={**layer_coords, "fold": folds}),
            "layer_accuracy": xr.DataArray([r.accuracy for r in results], dims="layer", coords=layer_coords,
                                           attrs={"description": "pooled test accuracy over the concept folds"}),
            "zero_shot_accuracy": xr.DataArray(zero_shot.sum(axis=1) / total.sum(), dims="layer", coords=layer_coords,
                                               attrs={"description": "W = I accuracy over all pool judgments"}),
        }
        raw = xr.DataArray(fold_acc, dims=("layer", "fold"), coords={**layer_coords, "fold": folds},
                           attrs={"description": "test accuracy over judgments per concept fold, not ceiled"})
        attrs = {
            "model": candidate.identifier, "benchmark": self.identifier, "benchmark_version": self.version,
            "metric": METRIC, "metric_version": METRIC_VERSION, "transform": self.transform,
            "rectangular_k": self.rectangular_k, "lambdas": json.dumps(list(self.lambdas)), "seed": self.seed,
            "n_folds": self.n_folds, "inner_folds": self.inner_folds, "selected_layer": selected,
            "stimulus_set": stimuli.identifier, "stimulus_set_hash": stimuli.content_hash, "human_data": human.source,
            "ceiling_method": ceiling_method, "human_ceiling": human.ceiling,
            "error_method": (f"triplet bootstrap ({int(self.n_bootstrap)} resamples, seed {self.seed}): the "
                             f"{len(tested)} tested unique triplets resampled with all their judgments, accuracy "
                             + ("and ceiling recomputed on each resample" if fixed is None else
                                "recomputed on each resample over the fixed ceiling")
                             + "; score_error: bootstrap standard deviation; ci_low/ci_high: 95% percentile interval"),
            "selection_method": selection,
            "probe_method": ("P(odd) = softmax([S_jk, S_ik, S_ij]) with S = (X W^T)(X W^T)^T; loss = mean cross-entropy"
                             " + lambda ||W - (tr W / p) I||^2 (rectangular: on W^T W); batched L-BFGS, strong Wolfe; "
                             f"KFold({self.n_folds}) over concepts (seed {self.seed}), lambda by "
                             f"KFold({self.inner_folds})"
                             " over the unique training triplets"),
            "summary": (f"accuracy {accuracy:.4f} ({int(k)}/{int(n)} judgments), layer {selected}; zero-shot "
                        f"{float(variables['zero_shot_accuracy'].max()):.4f}; chance 0.3333"),
        }
        return assembly.make(score=accuracy / ceiling, score_error=float(boot.se), ceiling=ceiling, raw=raw,
                             attrs=attrs, **variables)
