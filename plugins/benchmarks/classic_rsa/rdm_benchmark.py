"""A benchmark that compares model RDMs with subjects' brain RDMs (one or several regions) on a fixed stimulus set.

Method (each step is recorded in the assembly's attributes):

1. Model RDM per layer: layer output flattened (``pooling="flatten"``), dissimilarity 1 - Pearson r between
   stimuli, on the candidate's device. Layers are processed one at a time, so memory holds one layer's features.
2. ``raw[layer, (region,) subject]``: Spearman r between the model RDM's and each subject's upper triangle.
3. Ceiling: leave-one-subject-out (each subject vs. the mean of the others, averaged over subjects; Nili et al.
   2014 lower bound). The upper bound (vs. the mean of all subjects) is stored too.
4. Layer choice without selection bias (:mod:`.held_out`): ``n_splits`` random half-splits of the stimuli,
   stratified by category. On each split and region the layer with the best mean score on one half is chosen and
   scored on the other half, in both directions, together with that half's LOSO ceiling. A region's score is the
   mean held-out r divided by the mean held-out ceiling (a ratio of means: per-half ratios explode in resamples
   whose half-ceilings come near 0); the headline is the mean over regions.
5. Error: the whole of step 4 bootstrapped over stimuli. Each resample draws the stimuli with replacement (pairs of
   a stimulus with its own copy dropped), splits its unique stimuli into stratified halves, chooses layers on one
   half and scores and ceils on the other, exactly as for the headline; the SD and 2.5/97.5 percentiles of the
   resample headlines are the error and CI. A resample uses ``bootstrap_splits`` splits; when that is fewer than
   ``n_splits`` the resample headlines are corrected for the extra split-to-split variance
   (:func:`.held_out.split_variance_correction`).

Several regions (``brain`` returning a sequence) add a ``region`` dimension, a ``split`` dimension (``train`` and
``test``: the two halves of the first split, for ``cortexbench apa``; ``all``: every stimulus) and
:meth:`RDMBenchmark.brain_to_brain`.
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

from . import held_out as H

APA_SPLITS = ("train", "test", "all")


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
    brain: Callable[[], "BrainRDMs | Sequence[BrainRDMs]"]
    ceiling: str = "loso"  # "none": a single RDM; "report": LOSO ceiling stored, scores not divided by it
    strata: str | None = "category"
    n_splits: int = 10
    n_bootstrap: int = 1000
    bootstrap_splits: int = 2
    seed: int = 0
    pooling: str = "flatten"
    layers: Sequence[str] | None = None
    device: str | None = None  # None: the candidate's device (brain_to_brain: the CLI's --device)

    metric_identifier = "rsa"

    def __post_init__(self) -> None:
        self.metric = RSA(distance="correlation", comparison="spearman")
        if self.ceiling not in ("loso", "none", "report"):
            raise InputError(f"{self.identifier}: ceiling must be 'loso', 'report' or 'none', got {self.ceiling!r}")
        if self.n_splits < 1 or self.n_bootstrap < 2:
            raise InputError(f"{self.identifier}: n_splits must be >= 1 and n_bootstrap >= 2, got {self.n_splits} "
                             f"and {self.n_bootstrap}")
        if not 1 <= self.bootstrap_splits <= self.n_splits or (1 == self.bootstrap_splits < self.n_splits):
            raise InputError(f"{self.identifier}: bootstrap_splits must be n_splits ({self.n_splits}) or between 2 "
                             f"and n_splits (the split-variance correction needs 2), got {self.bootstrap_splits}")

    # --- scoring ---------------------------------------------------------------------------------------------
    def __call__(self, candidate: Candidate) -> xr.Dataset:
        stimuli, regions = self.stimuli(), self._regions()
        device = self.device or getattr(candidate, "device", "cpu")
        layer_names = list(self.layers) if self.layers else [layer.name for layer in candidate.layers]
        layer_info = {layer.name: layer for layer in candidate.layers}
        model_rdms = self._model_rdms(candidate, stimuli, layer_names, device)          # (L, n, n)
        subject_rdms = self._subject_rdms(regions, device)                             # (G, S, n, n)
        G, S, n = subject_rdms.shape[0], subject_rdms.shape[1], len(stimuli)
        region_names = [r.region for r in regions]
        subjects = list(regions[0].subjects)
        loso = self.ceiling != "none"
        ceiled = self.ceiling == "loso"
        labels = self._labels(stimuli)

        raw = self._raw(model_rdms, subject_rdms)                                      # (L, G, S)
        lower, upper = self._full_ceiling(subject_rdms) if loso else (None, None)      # (G, S)
        region_ceiling = lower.mean(1) if loso else np.full(G, np.nan)
        stack = H.RDMStack.build(model_rdms, subject_rdms, loso)
        head = H.held_out(stack, np.ones((1, n)), labels, self.n_splits, np.random.default_rng(self.seed), ceiled)
        boot = H.held_out(stack, H.resample_counts(n, self.n_bootstrap, self.seed), labels, self.bootstrap_splits,
                          np.random.default_rng([self.seed, 1]), ceiled)
        per_split = boot.split_values()                                                # (B, J)
        valid = np.isfinite(per_split).all(1)
        if valid.sum() < 2:
            raise InputError(f"{self.identifier}: fewer than 2 bootstrap resamples gave a finite score (a half's "
                             "ceiling or RDM was constant); use more stimuli")
        boot_score, shrink = H.split_variance_correction(per_split[valid], self.n_splits)
        score = float(head.headline()[0])

        names = np.array(layer_names, dtype=object)
        layer_coord = {"layer": layer_names,
                       "depth": ("layer", [layer_info[x].depth for x in layer_names]),
                       "depth_bin": ("layer", [layer_info[x].depth_bin for x in layer_names])}
        rs = {"region": region_names, "subject": subjects}
        fold = {"halving": np.arange(self.n_splits), "direction": ["0->1", "1->0"], "region": region_names}
        fold_dims = ("halving", "direction", "region")
        variables = {
            "ci_low": float(np.percentile(boot_score, 2.5)),
            "ci_high": float(np.percentile(boot_score, 97.5)),
            "layer_score": xr.DataArray(raw.mean(2) / (region_ceiling[None] if ceiled else 1.0),
                                        dims=("layer", "region"), coords={**layer_coord, "region": region_names},
                                        attrs={"description": "mean over subjects of raw (all stimuli)"
                                                              + (", divided by the region's ceiling" if ceiled else "")}),
            "region_score": xr.DataArray(head.region_scores()[0], dims="region", coords={"region": region_names},
                                         attrs={"description": "mean held-out r / mean held-out ceiling" if ceiled
                                                else "mean held-out r"}),
            "fold_raw": xr.DataArray(head.raw[0], dims=fold_dims, coords=fold,
                                     attrs={"description": "held-out mean-over-subjects r of the layer chosen on the "
                                                           "other half"}),
            "fold_ceiling": xr.DataArray(head.ceiling[0], dims=fold_dims, coords=fold,
                                         attrs={"description": "LOSO ceiling of the held-out half"}),
            "selected_layer": xr.DataArray(names[head.selected[0]], dims=fold_dims, coords=fold),
            "halves": xr.DataArray(head.assignment[0], dims=("halving", "stimulus"),
                                   coords={"halving": np.arange(self.n_splits), "stimulus": list(stimuli.stimulus_ids)},
                                   attrs={"description": "half (0 or 1) of every stimulus in each split"}),
            "bootstrap_score": xr.DataArray(boot_score, dims="bootstrap",
                                            attrs={"description": "headline of each stimulus resample (corrected "
                                                                  "for its fewer splits, see error_method)"}),
            "bootstrap_region_score": xr.DataArray(
                boot.region_scores()[valid], dims=("bootstrap", "region"), coords={"region": region_names},
                attrs={"description": f"region scores of every resample ({self.bootstrap_splits} split(s), "
                                      "uncorrected)"}),
        }
        if loso:
            variables["ceiling_per_subject"] = xr.DataArray(lower, dims=("region", "subject"), coords=rs)
            variables["ceiling_upper"] = float(upper.mean())
        if G > 1:
            raw_da = self._raw_with_splits(model_rdms, subject_rdms, raw, head.assignment[0, 0], layer_coord, rs)
        else:
            raw_da = xr.DataArray(raw, dims=("layer", "region", "subject"), coords={**layer_coord, **rs},
                                  attrs={"description": "Spearman r of model vs subject RDM (all stimuli), not "
                                                        "ceiled"})
            variables = {k: _single_region(v) for k, v in variables.items()}
            raw_da = _single_region(raw_da)
        attrs = self._attrs(candidate, stimuli, regions, ceiled, loso, shrink, int(valid.sum()))
        attrs["summary"] = self._summary(head, layer_names, layer_info, raw, region_names)
        return assembly.make(score=score, score_error=float(np.std(boot_score, ddof=1)),
                             ceiling=float(np.mean(region_ceiling)), raw=raw_da, attrs=attrs, **variables)

    # --- brain to brain --------------------------------------------------------------------------------------
    def brain_to_brain(self) -> xr.Dataset:
        """Every region of each other subject, and the LOSO mean of the others, against every region of each subject.

        Spearman r between RDMs on the ``train`` and ``test`` halves of the first split (the ones the model assembly's
        ``raw`` uses) and on all stimuli: the brain-to-brain assembly of ``cortexbench ceiling`` / ``apa``.
        """
        from cortexbench import alignment_patterns as apa

        stimuli, regions = self.stimuli(), self._regions()
        subject_rdms = self._subject_rdms(regions, self.device or "cpu")             # (G, S, n, n)
        G, S = subject_rdms.shape[:2]
        if S < 2:
            raise InputError(f"{self.identifier}: a brain-to-brain comparison needs at least 2 subjects, got {S}")
        region_names, subjects = [r.region for r in regions], list(regions[0].subjects)
        first = self._first_split(self._labels(stimuli), len(stimuli))
        flat = subject_rdms.reshape(G * S, *subject_rdms.shape[2:])
        others = H.leave_one_out_means(subject_rdms.transpose(0, 1)).transpose(0, 1).reshape(flat.shape)
        pairs = np.full((S, G, G, S, len(APA_SPLITS)), np.nan)
        loso = np.empty((G, G, S, len(APA_SPLITS)))
        for k, index in enumerate(self._split_indices(first)):
            ranked = F.rankdata(F.upper(_sub(flat, index)))
            full = F.pearson_matrix(ranked, ranked).reshape(G, S, G, S).cpu().numpy()   # (src reg, src subj, reg, subj)
            pairs[..., k] = full.transpose(1, 0, 2, 3)
            ranked_others = F.rankdata(F.upper(_sub(others, index)))
            unit = [_unit(x).reshape(G, S, -1) for x in (ranked_others, ranked)]
            loso[..., k] = torch.einsum("gsm,hsm->ghs", *unit).cpu().numpy()
        same = np.arange(S)
        pairs[same, :, :, same] = np.nan
        coords = {"source_subject": subjects, "source_region": region_names, "region": region_names,
                  "subject": subjects, "split": list(APA_SPLITS)}
        raw = xr.DataArray(pairs, dims=("source_subject", "source_region", "region", "subject", "split"),
                           coords=coords, attrs={"description": "Spearman r of a source subject's region RDM with a "
                                                                "target subject's region RDM; NaN for the same subject"})
        loso_da = xr.DataArray(loso, dims=("source_region", "region", "subject", "split"),
                               coords={k: coords[k] for k in ("source_region", "region", "subject", "split")},
                               attrs={"description": "Spearman r of the mean RDM of the other subjects' source region "
                                                     "with the subject's region RDM"})
        attrs = {"benchmark": self.identifier, "benchmark_version": self.version,
                 "metric": self.metric_identifier, "metric_version": self.metric.version,
                 "metric_config": json.dumps(self.metric.config), "stimulus_set": stimuli.identifier,
                 "n_stimuli": len(stimuli), "n_subjects": S, "seed": self.seed,
                 "split_method": self._split_text()}
        halves = xr.DataArray(first, dims="stimulus", coords={"stimulus": list(stimuli.stimulus_ids)},
                              attrs={"description": "0: train half, 1: test half"})
        return apa.brain_to_brain_assembly(raw, loso_da, attrs, n_bootstrap=self.n_bootstrap, halves=halves)

    # --- steps -----------------------------------------------------------------------------------------------
    def _regions(self) -> list[BrainRDMs]:
        loaded = self.brain()
        regions = [loaded] if isinstance(loaded, BrainRDMs) else list(loaded)
        if not regions:
            raise InputError(f"{self.identifier}: the brain loader returned no regions")
        names = [r.region for r in regions]
        if len(set(names)) != len(names):
            raise InputError(f"{self.identifier}: region names repeat: {names}")
        for r in regions[1:]:
            if r.subjects != regions[0].subjects:
                raise InputError(f"{self.identifier}: region {r.region} has subjects {r.subjects}, region "
                                 f"{regions[0].region} has {regions[0].subjects}; all regions need the same subjects")
        return regions

    def _subject_rdms(self, regions: list[BrainRDMs], device: str) -> torch.Tensor:
        stimuli = self.stimuli()
        for r in regions:
            check_same_stimuli(stimuli.stimulus_ids, r.stimulus_ids, f"{self.identifier}: brain RDMs vs stimuli")
        return torch.as_tensor(np.stack([r.rdms for r in regions]), dtype=torch.float64, device=device)

    def _model_rdms(self, candidate: Candidate, stimuli: StimulusSet, layers: list[str], device: str) -> torch.Tensor:
        features = candidate.activations(stimuli, layers, pooling=self.pooling)  # one pass, memory-mapped
        rdms = []
        for name in progress.bar(layers, desc=f"{self.identifier}: model RDMs"):
            # one layer in memory at a time; float64 keeps 1 - r exact for nearly identical stimuli
            values = torch.tensor(np.asarray(features[name].values), dtype=torch.float64, device=device)
            rdms.append(F.rdm(values, "correlation"))
        return torch.stack(rdms)

    def _labels(self, stimuli: StimulusSet) -> np.ndarray:
        if not self.strata:
            return np.zeros(len(stimuli), dtype=np.int64)
        values = stimuli.metadata.get(self.strata)
        if values is None:
            raise InputError(f"{self.identifier}: stimulus set {stimuli.identifier} has no {self.strata!r} column to "
                             "stratify the halves by; pass strata=null for unstratified halves")
        return np.unique(np.asarray(values, dtype=str), return_inverse=True)[1].astype(np.int64)

    def _raw(self, model_rdms: torch.Tensor, subject_rdms: torch.Tensor) -> np.ndarray:
        G, S = subject_rdms.shape[:2]
        out = F.compare(F.upper(model_rdms), F.upper(subject_rdms.flatten(0, 1)), "spearman")
        return out.reshape(-1, G, S).cpu().numpy()

    def _full_ceiling(self, subject_rdms: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        bounds = [F.loso_ceiling(region, "spearman") for region in subject_rdms]
        return tuple(torch.stack([b[k] for b in bounds]).cpu().numpy() for k in (0, 1))

    def _first_split(self, labels: np.ndarray, n: int) -> np.ndarray:
        """Halves of the headline's first split (the same draw as in ``held_out``)."""
        members = np.ones((self.n_splits, n), dtype=bool)
        return H.stratified_halves(labels, members, np.random.default_rng(self.seed))[0]

    @staticmethod
    def _split_indices(first: np.ndarray) -> list[np.ndarray]:
        return [np.flatnonzero(first == 0), np.flatnonzero(first == 1), np.arange(len(first))]

    def _raw_with_splits(self, model_rdms, subject_rdms, raw, first, layer_coord, rs) -> xr.DataArray:
        out = np.empty((*raw.shape, len(APA_SPLITS)))
        for k, index in enumerate(self._split_indices(first)):
            out[..., k] = raw if APA_SPLITS[k] == "all" else self._raw(_sub(model_rdms, index),
                                                                       _sub(subject_rdms, index))
        return xr.DataArray(out, dims=("layer", "region", "subject", "split"),
                            coords={**layer_coord, **rs, "split": list(APA_SPLITS)},
                            attrs={"description": "Spearman r of model vs subject RDM, not ceiled; split train/test: "
                                                  "the two halves of the first stratified split (for APA), all: "
                                                  "every stimulus"})

    def _split_text(self) -> str:
        return (f"{self.n_splits} random half-splits of the stimuli"
                + (f" stratified by {self.strata}" if self.strata else "") + f" (seed {self.seed})")

    def _attrs(self, candidate, stimuli, regions, ceiled: bool, loso: bool, shrink: float, n_valid: int) -> dict:
        corrected = self.bootstrap_splits < self.n_splits
        error_method = (
            f"bootstrap of the whole held-out procedure over stimuli ({self.n_bootstrap} resamples, seed {self.seed}, "
            f"{n_valid} finite): each resample draws the stimuli with replacement (pairs of a stimulus with its own "
            "copy dropped, multiplicities as pair weights), splits its unique stimuli into halves"
            + (f" stratified by {self.strata}" if self.strata else "")
            + ", chooses the layer on one half and scores it" + (" and the LOSO ceiling" if ceiled else "")
            + f" on the other (both directions, {self.bootstrap_splits} split(s)); score_error = SD and ci = "
              "2.5/97.5 percentiles of the resample headlines"
            + (f", corrected to {self.n_splits} splits by the law of total variance (within-resample split "
               f"variance; shrink factor {shrink:.3f})" if corrected else ""))
        return {
            "model": candidate.identifier, "benchmark": self.identifier, "benchmark_version": self.version,
            "metric": self.metric_identifier, "metric_version": self.metric.version,
            "metric_config": json.dumps({**self.metric.config, "pooling": self.pooling}),
            "region": ", ".join(r.region for r in regions), "stimulus_set": stimuli.identifier,
            "stimulus_set_hash": stimuli.content_hash, "n_stimuli": len(stimuli), "n_subjects": len(regions[0].subjects),
            "n_regions": len(regions),
            "ceiling_method": ("leave-one-subject-out lower bound: mean over subjects of Spearman r between a "
                               "subject's RDM and the mean RDM of the other subjects (Nili et al. 2014)"
                               + ("; mean over regions" if len(regions) > 1 else "")
                               if ceiled else
                               "leave-one-subject-out lower bound (as for 'loso'), reported only: the subjects agree "
                               "too little for a stable ratio, so the score is the raw Spearman r"
                               if loso else
                               "none: a single RDM allows no subject-split ceiling; score is the raw Spearman r"),
            "selection_method": (self._split_text() + "; per region the layer with the best mean Spearman r on one "
                                 "half is scored on the other half, both directions; region score = mean held-out r"
                                 + (" / mean LOSO ceiling of the held-out halves" if ceiled else "")
                                 + " over splits and directions" + ("; headline = mean over regions"
                                                                    if len(regions) > 1 else "")),
            "error_method": error_method,
            "seed": self.seed, "n_splits": self.n_splits, "n_bootstrap": self.n_bootstrap,
            "bootstrap_splits": self.bootstrap_splits, "bootstrap_valid": n_valid, "split_variance_shrink": shrink,
        }

    def _summary(self, head: H.HeldOut, layer_names, layer_info, raw: np.ndarray, region_names) -> str:
        lines = []
        for g, region in enumerate(region_names):
            chosen = [layer_names[i] for i in head.selected[0, :, :, g].ravel()]
            modal, count = Counter(chosen).most_common(1)[0]
            prefix = "layer    " if len(region_names) == 1 else f"{region:<8} "
            lines.append(f"{prefix}{modal} (depth {layer_info[modal].depth:.2f}) chosen in {count}/{len(chosen)} "
                         f"held-out halves; full-set raw r = {raw[layer_names.index(modal), g].mean():.4f}")
        return "\n".join(lines)


def _sub(rdms: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    idx = torch.as_tensor(index, device=rdms.device)
    return rdms[..., idx, :][..., idx]


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(-1, keepdim=True)
    return x / x.norm(dim=-1, keepdim=True)


def _single_region(value):
    """Single-region benchmarks keep their historical layout: no region dimension (the region is an attribute)."""
    if isinstance(value, xr.DataArray) and "region" in value.dims:
        return value.isel(region=0, drop=True)
    return value
