"""``things.recovery``: would the model under test be identifiable from odd-one-out judgments it generated?

The model under test joins a candidate pool of registered models (option ``pool``). Each generator (by default
every pool member, so the full confusion matrix is computed) is fitted to the human triplets, simulates synthetic
judgments, and every candidate is refitted on them. The headline is the model's recovery accuracy: the share of
seeds in which, as generator, it is the best-predicting candidate, at the largest training size and the headline
transform. ``cortexbench score MODEL things.recovery --benchmark-option pool='["a", "b"]'`` asks it for any model.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from cortexbench import assembly
from cortexbench.errors import InputError
from cortexbench.interfaces import Candidate, Layer
from cortexbench.stimuli import StimulusSet

from . import metrics
from .data import N_CONCEPTS, load_concepts
from .human import ThingsOptions, concept_stimuli, load_human
from .objective import TRANSFORMS
from .probe_benchmark import METRIC_VERSION
from .recovery import CANDIDATE_LAMBDAS, GENERATOR_LAMBDAS, PAPER_N_TRAIN, RecoveryResult, run_recovery

METRIC = "model-recovery"
DEFAULT_POOL = ("things/vice-42d", "things/spose-14d", "things/spose-82d")
#: THINGS's out-of-vocabulary policy for pool models that read concept names: a concept whose name has no known
#: word gets the zero vector (its triplets' ties share the credit) instead of an error. GloVe 6B lacks 18 of the
#: 1854 THINGS words (e.g. "backscratcher"). ``pool_options`` overrides these.
POOL_OPTION_DEFAULTS: dict[str, dict] = {"glove/6B-50d": {"oov": "zero"}}
QUICK_DEFAULTS = {"n_train": [100, 400, 1600], "seeds": 3, "lambdas": [1e-3, 1.0, 1e3],
                  "generator_lambdas": [1e-3, 1e-1, 10.0]}


def representational_layer(layers: Sequence[Layer]) -> str:
    """The default layer: the last one that is not the output head. The paper's features are a network's
    penultimate representation (classification layer removed) or its embedding (CLIP ``encode_image``); class
    logits are a readout. A model whose only layers are heads falls back to its last layer."""
    kept = [layer for layer in layers if not layer.head]
    return (kept or list(layers))[-1].name


def _names(value: str | Sequence[str], what: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    names = [str(v) for v in value]
    if len(set(names)) != len(names):
        raise InputError(f"{what} lists a model twice: {names}")
    return names


@dataclass
class ThingsRecoveryBenchmark(ThingsOptions):
    identifier: str
    version: str
    pool: Sequence[str] | str = DEFAULT_POOL
    generators: str | Sequence[str] = "all"
    transforms: Sequence[str] | str = TRANSFORMS
    n_train: Sequence[int] = PAPER_N_TRAIN
    seeds: int | Sequence[int] = 30
    lambdas: Sequence[float] = CANDIDATE_LAMBDAS
    generator_lambdas: Sequence[float] = GENERATOR_LAMBDAS
    generator_folds: int = 5
    generator_seed: int = 42
    rectangular_k: int = 30
    headline_transform: str = "full"
    layer: str | None = None
    pool_layers: Mapping[str, str] = field(default_factory=dict)
    pool_options: Mapping[str, Mapping] = field(default_factory=dict)
    tie_seed: int = 0
    plot_dir: str | None = None

    metric = METRIC

    def __post_init__(self) -> None:
        self.transforms = _names(self.transforms, "transforms")
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if unknown or not self.transforms:
            raise InputError(f"{self.identifier}: transforms must be among {TRANSFORMS}, got {self.transforms}")
        if self.headline_transform not in self.transforms:
            raise InputError(f"{self.identifier}: headline_transform {self.headline_transform!r} is not among the "
                             f"transforms {self.transforms}")
        self.pool = _names(self.pool, "pool")
        self.n_train = sorted(int(n) for n in self.n_train)
        if not self.n_train or self.n_train[0] < 8:
            raise InputError(f"{self.identifier}: n_train must list training sizes of at least 8 triplets")
        if isinstance(self.seeds, (int, float)):
            self.seeds = list(range(int(self.seeds)))
        self.seeds = [int(s) for s in self.seeds]
        if not self.seeds:
            raise InputError(f"{self.identifier}: at least one seed is needed")
        self.lambdas = [float(l) for l in self.lambdas]
        self.generator_lambdas = [float(l) for l in self.generator_lambdas]

    # --- features of the model under test and the pool ---------------------------------------------------
    def _features(self, candidate: Candidate, stimuli: StimulusSet) -> tuple[dict[str, np.ndarray], dict]:
        from cortexbench.activations import CachedCandidate
        from cortexbench.plugin_manager import get_plugin_manager

        layer = self.layer or representational_layer(candidate.layers)
        own = candidate.activations(stimuli, [layer], self.pooling)[layer]
        features = {candidate.identifier: np.asarray(own.values)}
        provenance = {candidate.identifier: {"layer": layer}}
        manager = get_plugin_manager()
        for name in self.pool:
            if name == candidate.identifier:
                continue
            spec = manager.model_spec(name)
            if stimuli.modality not in spec.modalities:
                raise InputError(f"pool model {name!r} accepts {list(spec.modalities)} stimuli, but the concepts are "
                                 f"presented as {stimuli.modality}; choose pool models for that modality")
            options = {**POOL_OPTION_DEFAULTS.get(name, {}), **dict(self.pool_options.get(name, {}))}
            model = manager.create_model(name, **options)
            other = CachedCandidate(model, getattr(candidate, "store", None),
                                    device=getattr(candidate, "device", "cpu"),
                                    batch_size=getattr(candidate, "batch_size", 64),
                                    precision=getattr(candidate, "precision", "fp32"))
            chosen = self.pool_layers.get(name) or representational_layer(other.layers)
            features[name] = np.asarray(other.activations(stimuli, [chosen], self.pooling)[chosen].values)
            provenance[name] = {"layer": chosen, "options": options,
                                "fingerprint": dict(model.fingerprint())}
        if len(features) < 2:
            raise InputError(f"{self.identifier}: the candidate pool needs at least one model besides "
                             f"{candidate.identifier!r}; pass --benchmark-option pool='[\"model\", ...]'")
        return features, provenance

    def _generators(self, candidate: Candidate, names: list[str]) -> list[str]:
        if self.generators == "all":
            return names
        if self.generators == "candidate":
            return [candidate.identifier]
        chosen = _names(self.generators, "generators")
        if candidate.identifier not in chosen:
            chosen = [candidate.identifier, *chosen]
        unknown = [g for g in chosen if g not in names]
        if unknown:
            raise InputError(f"{self.identifier}: generators {unknown} are not in the candidate pool {names}")
        return chosen

    def __call__(self, candidate: Candidate) -> xr.Dataset:
        concepts = load_concepts()
        human = load_human(N_CONCEPTS, self.triplets, self.noise_ceiling)
        stimuli = concept_stimuli(concepts, self.images, self.text_column)
        features, provenance = self._features(candidate, stimuli)
        generators = self._generators(candidate, list(features))
        settings = self.solver_settings(candidate)
        result = run_recovery(features, generators, human, self.transforms, self.n_train, self.seeds, settings,
                              lambdas=self.lambdas, generator_lambdas=self.generator_lambdas,
                              generator_folds=self.generator_folds, generator_seed=self.generator_seed,
                              rectangular_k=self.rectangular_k, desc=self.identifier)
        ds = self.assemble(candidate.identifier, result, human, stimuli, provenance)
        if self.plot_dir:
            from .plots import plot_recovery

            plot_recovery(ds, self.plot_dir)
        return ds

    # --- the assembly ----------------------------------------------------------------------------------------
    def assemble(self, model: str, r: RecoveryResult, human, stimuli: StimulusSet, provenance: dict) -> xr.Dataset:
        columns = np.array([r.candidates.index(g) for g in r.generators])
        winner, tied = metrics.winners(r.test_accuracy, self.tie_seed)             # (generator, N, seed, transform)
        share, low, high, hits = metrics.recovery_accuracy(winner, columns, seed_axis=2)
        rr = metrics.reciprocal_ranks(r.test_accuracy, columns)
        counts = metrics.confusion(winner, len(r.candidates), seed_axis=2)          # (generator, candidate, N, T)
        coords = {"generator": r.generators, "candidate": r.candidates, "n_train": r.n_train, "seed": r.seeds,
                  "transform": r.transforms}

        def da(values, dims, description):
            return xr.DataArray(values, dims=dims, coords={d: coords[d] for d in dims},
                                attrs={"description": description})

        full = ("generator", "candidate", "n_train", "seed", "transform")
        summary = ("generator", "n_train", "transform")
        g0, t0 = r.generators.index(model), r.transforms.index(self.headline_transform)
        n0 = len(r.n_train) - 1
        n_seeds = len(r.seeds)
        score = float(share[g0, n0, t0])
        variables = {
            "ci_low": float(low[g0, n0, t0]), "ci_high": float(high[g0, n0, t0]),
            "val_accuracy": da(r.val_accuracy, full, "mean validation accuracy over folds at the chosen lambda"),
            "chosen_lambda": da(r.chosen_lambda, full, "lambda chosen by mean validation accuracy (NaN: zero-shot)"),
            "winner": da(np.asarray(r.candidates, dtype=object)[winner], ("generator", "n_train", "seed", "transform"),
                         "recovered candidate (highest mean test accuracy; ties broken at random)"),
            "tied": da(tied, ("generator", "n_train", "seed", "transform"),
                       "several candidates shared the best accuracy"),
            "recovery_accuracy": da(share, summary, "share of seeds in which the generator was recovered"),
            "recovery_ci_low": da(low, summary, "exact binomial 95% interval, lower end"),
            "recovery_ci_high": da(high, summary, "exact binomial 95% interval, upper end"),
            "reciprocal_rank": da(rr, ("generator", "n_train", "seed", "transform"),
                                  "1 / rank of the generator among the candidates (average ranks for ties)"),
            "mrr": da(rr.mean(axis=2), summary, "mean reciprocal rank over seeds"),
            "confusion": da(counts, ("generator", "candidate", "n_train", "transform"),
                            "number of seeds in which each candidate was recovered"),
            "generator_lambda": da(r.generator_lambda, ("generator", "transform"), "lambda of the generator's fit"),
            "generator_temperature": da(r.generator_temperature, ("generator", "transform"),
                                        "temperature calibrated to the noise ceiling on held-out (cross-fitted) "
                                        "predictions"),
            "generator_human_accuracy": da(r.generator_human_accuracy, ("generator", "transform"),
                                           "generator's held-out accuracy on the human calibration judgments "
                                           "(cross-fitted: a triplet it was fitted on is predicted by the CV fold "
                                           "fit that left it out)"),
            "generator_cv_accuracy": da(r.generator_cv_accuracy, ("generator", "transform"),
                                        "generator's cross-validated accuracy on human judgments at its lambda "
                                        "(zero-shot: accuracy on all pool judgments)"),
            "feature_dim": da([r.feature_dims[c] for c in r.candidates], ("candidate",), "feature dimensions"),
        }
        raw = da(r.test_accuracy, full, "candidate's mean test accuracy over the folds on the generator's synthetic "
                                        "judgments (lambda chosen on validation)")
        attrs = {
            "model": model, "benchmark": self.identifier, "benchmark_version": self.version, "metric": METRIC,
            "metric_version": METRIC_VERSION, "headline_transform": self.headline_transform,
            "headline_n_train": int(r.n_train[n0]), "pool": json.dumps(r.candidates),
            "generators": json.dumps(r.generators),
            "pool_provenance": json.dumps(provenance, sort_keys=True, default=str),
            "lambdas": json.dumps(self.lambdas), "generator_lambdas": json.dumps(self.generator_lambdas),
            "generator_folds": self.generator_folds, "generator_seed": self.generator_seed,
            "seeds": json.dumps(r.seeds),
            "tie_seed": self.tie_seed, "rectangular_k": self.rectangular_k, "noise_ceiling": human.ceiling,
            "noise_ceiling_method": human.ceiling_method, "human_data": human.source,
            "stimulus_set": stimuli.identifier, "stimulus_set_hash": stimuli.content_hash,
            "ceiling_method": "none: recovery accuracy is a share of simulations (chance = 1 / number of candidates)",
            "error_method": (f"binomial: sqrt(p (1 - p) / n) over the n = {n_seeds} seeds; ci_low/ci_high: exact "
                             "Clopper-Pearson 95% interval"),
            "recovery_method": ("generators fitted to human triplets (lambda by KFold over unique triplets), "
                                "temperature calibrated to the noise ceiling on held-out predictions (calibration "
                                "triplets inside the fitting pool predicted by the CV fold fit that left them out); "
                                "features: the last non-head layer unless given; per (N, seed): KFold(3) over "
                                "concepts, 865/371 train/validation concepts, N / N/8 / N/8 unique non-human "
                                "triplets, one simulated "
                                "judgment each; candidates refitted at T = 1 for every lambda, lambda by mean "
                                "validation accuracy over folds, scored by mean test accuracy"),
            "summary": (f"recovered in {int(hits[g0, n0, t0])}/{n_seeds} seeds as generator "
                        f"({self.headline_transform}, "
                        f"N = {r.n_train[n0]}); MRR {float(rr[g0, n0, :, t0].mean()):.3f}; chance "
                        f"{1 / len(r.candidates):.3f} ({len(r.candidates)} candidates)"),
        }
        return assembly.make(score=score, score_error=math.sqrt(score * (1 - score) / n_seeds), ceiling=float("nan"),
                             raw=raw, attrs=attrs, **variables)
