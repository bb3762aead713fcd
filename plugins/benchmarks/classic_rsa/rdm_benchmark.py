"""A benchmark that compares model RDMs with subjects' brain RDMs on a fixed stimulus set.

Method (each step is recorded in the assembly's attributes):

1. Model RDM per layer: layer output flattened (``pooling="flatten"``), dissimilarity 1 - Pearson r between
   stimuli. Layers are processed one at a time, so memory holds one layer's features.
2. ``raw[layer, subject]``: Spearman r between the model RDM's and each subject's upper triangle.
3. Ceiling: leave-one-subject-out (each subject vs. the mean of the others, averaged over subjects; Nili et al.
   2014 lower bound). The upper bound (vs. the mean of all subjects) is stored too.
4. Layer choice without selection bias: ``n_splits`` random half-splits of the stimuli, stratified by category.
   On each split the layer with the best mean score on one half is chosen and scored (ceiled by the ceiling
   of that half) on the other half, in both directions. The headline is the mean of those held-out ceiled scores.
5. Error: bootstrap over stimuli (resampling with replacement, dropping pairs of a stimulus with its own
   copy): the SD and 95 % percentile interval of the ceiled score of the most often chosen layer.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from cortexbench import assembly, progress
from cortexbench.errors import InputError
from cortexbench.interfaces import Candidate
from cortexbench.plugins.metrics.rsa import functional as F
from cortexbench.plugins.metrics.rsa.metric import RSA
from cortexbench.stimuli import StimulusSet, check_same_stimuli


@dataclass(frozen=True)
class BrainRDMs:
    """Subjects' RDMs for one region, ``(subject, stimulus, stimulus)``, in the order of ``stimulus_ids``."""

    region: str
    rdms: np.ndarray
    subjects: tuple[str, ...]
    stimulus_ids: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        s, n, m = self.rdms.shape
        if n != m or n != len(self.stimulus_ids) or s != len(self.subjects):
            raise InputError(f"{self.source}: RDMs of shape {self.rdms.shape} do not match {len(self.subjects)} "
                             f"subjects x {len(self.stimulus_ids)} stimuli")
        if not np.isfinite(self.rdms).all():
            raise InputError(f"{self.source}: RDMs contain NaN or infinite values")
        if not np.allclose(self.rdms, self.rdms.transpose(0, 2, 1), atol=1e-6):
            raise InputError(f"{self.source}: RDMs are not symmetric; is the file corrupt or in another layout?")


@dataclass
class RDMBenchmark:
    identifier: str
    version: str
    stimuli: Callable[[], StimulusSet]
    brain: Callable[[], BrainRDMs]
    ceiling: str = "loso"  # "none": a single RDM; "report": LOSO ceiling stored, scores not divided by it
    strata: str | None = "category"
    n_splits: int = 10
    n_bootstrap: int = 1000
    seed: int = 0
    pooling: str = "flatten"
    layers: Sequence[str] | None = None

    metric_identifier = "rsa"

    def __post_init__(self) -> None:
        self.metric = RSA(distance="correlation", comparison="spearman")
        if self.ceiling not in ("loso", "none", "report"):
            raise InputError(f"{self.identifier}: ceiling must be 'loso', 'report' or 'none', got {self.ceiling!r}")

    def __call__(self, candidate: Candidate) -> xr.Dataset:
        stimuli, brain = self.stimuli(), self.brain()
        check_same_stimuli(stimuli.stimulus_ids, brain.stimulus_ids, f"{self.identifier}: brain RDMs vs stimuli")
        layer_names = list(self.layers) if self.layers else [layer.name for layer in candidate.layers]
        layer_info = {layer.name: layer for layer in candidate.layers}
        model_rdms = self._model_rdms(candidate, stimuli, layer_names)           # (L, n, n)
        subject_rdms = torch.as_tensor(brain.rdms, dtype=torch.float64)          # (S, n, n)
        raw = self._scores(model_rdms, subject_rdms, np.arange(len(stimuli)))     # (L, S)
        ceiling_lower, ceiling_upper = self._ceiling(subject_rdms)
        ceiling = float(ceiling_lower.mean()) if ceiling_lower is not None else float("nan")
        split_scores, selected, split_raw, split_ceilings = self._cross_validated(model_rdms, subject_rdms, stimuli,
                                                                                 layer_names)
        modal_layer = Counter(selected).most_common(1)[0][0]
        boot = self._bootstrap(model_rdms[layer_names.index(modal_layer)], subject_rdms)
        score = float(np.mean(split_scores))
        ceiled = self.ceiling == "loso"
        layer_coord = {"layer": layer_names,
                       "depth": ("layer", [layer_info[n].depth for n in layer_names]),
                       "depth_bin": ("layer", [layer_info[n].depth_bin for n in layer_names])}
        raw_da = xr.DataArray(raw, dims=("layer", "subject"), coords={**layer_coord, "subject": list(brain.subjects)},
                              attrs={"description": "Spearman r of model vs subject RDM (all stimuli), not ceiled"})
        splits = np.arange(len(split_scores))
        variables = {
            "ci_low": float(np.percentile(boot, 2.5)),
            "ci_high": float(np.percentile(boot, 97.5)),
            "layer_score": xr.DataArray(raw.mean(1) / (ceiling if ceiled else 1.0), dims="layer", coords=layer_coord,
                                        attrs={"description": "mean over subjects of raw, divided by the ceiling"}),
            "split_score": xr.DataArray(split_scores, dims="split", coords={"split": splits},
                                        attrs={"description": "held-out ceiled score of the layer chosen on the "
                                                              "other half"}),
            "split_raw": xr.DataArray(split_raw, dims="split", coords={"split": splits}),
            "split_ceiling": xr.DataArray(split_ceilings, dims="split", coords={"split": splits}),
            "selected_layer": xr.DataArray(np.array(selected, dtype=object), dims="split", coords={"split": splits}),
            "bootstrap_score": xr.DataArray(boot, dims="bootstrap"),
        }
        if ceiling_lower is not None:
            variables["ceiling_per_subject"] = xr.DataArray(ceiling_lower.numpy(), dims="subject",
                                                            coords={"subject": list(brain.subjects)})
            variables["ceiling_upper"] = float(ceiling_upper.mean())
        count = Counter(selected)[modal_layer]
        attrs = {
            "model": candidate.identifier, "benchmark": self.identifier, "benchmark_version": self.version,
            "metric": self.metric_identifier, "metric_version": self.metric.version,
            "metric_config": json.dumps({**self.metric.config, "pooling": self.pooling}),
            "region": brain.region, "stimulus_set": stimuli.identifier, "stimulus_set_hash": stimuli.content_hash,
            "n_stimuli": len(stimuli), "n_subjects": len(brain.subjects),
            "ceiling_method": ("leave-one-subject-out lower bound: mean over subjects of Spearman r between a "
                               "subject's RDM and the mean RDM of the other subjects (Nili et al. 2014)"
                               if ceiled else
                               "leave-one-subject-out lower bound (as for 'loso'), reported only: the subjects agree "
                               "too little for a stable ratio, so the score is the raw Spearman r"
                               if self.ceiling == "report" else
                               "none: a single RDM allows no subject-split ceiling; score is the raw Spearman r"),
            "selection_method": (f"{self.n_splits} random half-splits of the stimuli"
                                 + (f" stratified by {self.strata}" if self.strata else "")
                                 + "; layer chosen on one half by mean Spearman r, scored on the other half, "
                                   "both directions; headline = mean of the held-out "
                                 + ("ceiled scores" if ceiled else "scores")),
            "error_method": (f"bootstrap over stimuli ({self.n_bootstrap} resamples, seed {self.seed}, pairs of a "
                             f"stimulus with its own copy dropped): SD of the {'ceiled ' if ceiled else ''}score of "
                             f"the most often chosen layer ({modal_layer})"),
            "seed": self.seed, "n_splits": self.n_splits, "n_bootstrap": self.n_bootstrap,
            "summary": (f"layer    {modal_layer} (depth {layer_info[modal_layer].depth:.2f}) chosen in {count}/"
                        f"{len(selected)} held-out halves; full-set raw r = {raw[layer_names.index(modal_layer)].mean():.4f}"),
        }
        return assembly.make(score=score, score_error=float(np.std(boot, ddof=1)), ceiling=ceiling, raw=raw_da,
                             attrs=attrs, **variables)

    # --- steps -------------------------------------------------------------------------------------------
    def _model_rdms(self, candidate: Candidate, stimuli: StimulusSet, layers: list[str]) -> torch.Tensor:
        features = candidate.activations(stimuli, layers, pooling=self.pooling)  # one pass, memory-mapped
        rdms = []
        for name in progress.bar(layers, desc=f"{self.identifier}: model RDMs"):
            # one layer in memory at a time; float64 keeps 1 - r exact for nearly identical stimuli
            rdms.append(F.rdm(torch.tensor(np.asarray(features[name].values), dtype=torch.float64), "correlation"))
        return torch.stack(rdms)

    def _scores(self, model_rdms: torch.Tensor, subject_rdms: torch.Tensor, index: np.ndarray) -> np.ndarray:
        idx = torch.as_tensor(index)
        sub_m = F.upper(model_rdms[:, idx][:, :, idx])
        sub_s = F.upper(subject_rdms[:, idx][:, :, idx])
        return F.compare(sub_m, sub_s, "spearman").numpy()

    def _ceiling(self, subject_rdms: torch.Tensor, index: np.ndarray | None = None):
        if self.ceiling == "none":
            return None, None
        if index is not None:
            idx = torch.as_tensor(index)
            subject_rdms = subject_rdms[:, idx][:, :, idx]
        return F.loso_ceiling(subject_rdms, "spearman")

    def _halves(self, stimuli: StimulusSet, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        groups: dict[object, list[int]] = {}
        labels = stimuli.metadata.get(self.strata) if self.strata else None
        for i in range(len(stimuli)):
            groups.setdefault(labels[i] if labels is not None else 0, []).append(i)
        first, second = [], []
        for key in sorted(groups, key=str):
            members = rng.permutation(groups[key])
            cut = len(members) // 2 + (rng.integers(2) if len(members) % 2 else 0)
            first.extend(members[:cut])
            second.extend(members[cut:])
        return np.sort(first), np.sort(second)

    def _cross_validated(self, model_rdms, subject_rdms, stimuli, layer_names: list[str]):
        rng = np.random.default_rng(self.seed)
        scores, selected, raws, ceilings = [], [], [], []
        for _ in range(self.n_splits):
            half_a, half_b = self._halves(stimuli, rng)
            for train, test in ((half_a, half_b), (half_b, half_a)):
                best = int(np.argmax(self._scores(model_rdms, subject_rdms, train).mean(1)))
                raw_test = float(self._scores(model_rdms[best:best + 1], subject_rdms, test).mean())
                lower, _ = self._ceiling(subject_rdms, test)
                ceiling = float(lower.mean()) if lower is not None else 1.0
                scores.append(raw_test / ceiling if self.ceiling == "loso" else raw_test)
                raws.append(raw_test)
                ceilings.append(ceiling if lower is not None else float("nan"))
                selected.append(layer_names[best])
        return np.array(scores), selected, np.array(raws), np.array(ceilings)

    def _bootstrap(self, model_rdm: torch.Tensor, subject_rdms: torch.Tensor) -> np.ndarray:
        samples = F.bootstrap_samples(model_rdm.shape[-1], self.n_bootstrap, self.seed)
        return F.bootstrap_rsa(model_rdm, subject_rdms, samples, "spearman", ceiled=self.ceiling == "loso").numpy()
