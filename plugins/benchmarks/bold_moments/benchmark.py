"""BOLD Moments encoding benchmark (Höfling et al. 2026): RSA or ridge, per layer, region, subject and split.

``__call__`` scores a model: for every layer (features flattened, averaged over time, sparse-random-projected, see
:mod:`.features`) and every target region of every subject, the RSA score (Pearson r of 1 - Pearson RDMs) or the
ridge linear predictivity (R^2), on the train split (cross-validated) and the test split. Everything a layer needs
is batched: one RDM per (split, layer) against all subjects' region RDMs in one matrix product; one
eigendecomposition per (fold, layer) for every region and subject in ridge.

``brain_to_brain`` computes the brain-to-brain assembly: every region of each of 5 random partner subjects
(50 pairs, seeded) predicting every region of each target subject, plus the leave-one-subject-out (LOSO) mean
predictor. The lower ceiling (mean over partners of the same-region score) divides the model scores.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from cortexbench import alignment_patterns as apa
from cortexbench import assembly, progress
from cortexbench.errors import InputError
from cortexbench.interfaces import Candidate
from cortexbench.stimuli import StimulusSet

from . import atlas as atlas_mod
from . import brain as brain_mod
from . import layout
from .features import layer_features, project
from .protocol import (N_PARTNERS, NCSNR_THRESHOLD, PARTNER_SEED, REGIONS, RIDGE_ALPHAS, RIDGE_FOLDS, RIDGE_SEED,
                       SRP_EPS, SRP_SEED, partners)
from .scoring import condensed_rdms, grouped_ridge_cv, rsa_scores

ROOT_ENV = "CORTEXBENCH_BOLD_MOMENTS"
METRICS = ("rsa", "ridge")
ROUTES = ("video", "captions")
SPLITS = ("train", "test")


@dataclass
class BoldMomentsBenchmark:
    """One metric (``rsa`` or ``ridge``) on one stimulus route (``video`` clips or ``captions``)."""

    identifier: str
    version: str
    metric_name: str
    route: str = "video"
    root: str | None = None
    videos: str | None = None
    atlas: str | None = None
    captions: str | None = None
    subjects: Sequence[str] | None = None
    regions: Sequence[str] = REGIONS
    threshold: float = NCSNR_THRESHOLD
    layers: Sequence[str] | None = None
    n_partners: int = N_PARTNERS
    partner_seed: int = PARTNER_SEED
    n_bootstrap: int = 1000
    device: str | None = None
    n_targets_batch: int | None = 20000
    _brain: brain_mod.BrainData | None = field(default=None, init=False, repr=False)
    _rdms: dict[str, Any] = field(default_factory=dict, init=False, repr=False)      # target RDMs / ridge targets
    _lower: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.metric_name not in METRICS:
            raise InputError(f"{self.identifier}: metric must be one of {METRICS}, got {self.metric_name!r}")
        if self.route not in ROUTES:
            raise InputError(f"{self.identifier}: route must be one of {ROUTES}, got {self.route!r}")
        self.root = self.root or os.environ.get(ROOT_ENV)
        if not self.root:
            raise InputError(f"{self.identifier}: the BOLD Moments fMRI (OpenNeuro ds005165, derivatives versionB "
                             f"fsLR32k) is not bundled; pass --benchmark-option root=PATH or set ${ROOT_ENV}")
        self.regions = list(self.regions)
        if not isinstance(self.n_partners, int) or self.n_partners < 1:
            raise InputError(f"{self.identifier}: n_partners must be a whole number >= 1, got {self.n_partners!r}")
        if self.subjects is not None and self.n_partners >= len(self.subjects):
            raise InputError(f"{self.identifier}: n_partners={self.n_partners} needs more than {self.n_partners} "
                             f"subjects, got {len(self.subjects)} ({list(self.subjects)}); lower n_partners")
        if not isinstance(self.n_bootstrap, int) or self.n_bootstrap < 2:
            raise InputError(f"{self.identifier}: n_bootstrap must be at least 2, got {self.n_bootstrap!r}")

    @property
    def metric(self) -> str:
        return self.metric_name

    @property
    def metric_version(self) -> str:
        if self.metric_name == "rsa":
            from cortexbench.plugins.metrics.rsa import VERSION
        else:
            from cortexbench.plugins.metrics.ridge import VERSION
        return VERSION

    # --- data --------------------------------------------------------------------------------------------
    def brain(self) -> brain_mod.BrainData:
        if self._brain is None:
            self._brain = brain_mod.load(self.root, atlas_mod.load(self.atlas), self.regions, self.subjects,
                                         self.threshold)
        return self._brain

    def stimuli(self) -> tuple[StimulusSet, int, int]:
        """The stimulus set (train ids then test ids), the number of train clips and stimuli per clip."""
        data = self.brain()
        ids = data.stimulus_ids["train"] + data.stimulus_ids["test"]
        if self.route == "video":
            paths = [layout.video_path(self.root, i, self.videos) for i in ids]
            return StimulusSet.from_files("bold_moments/videos", paths, ids=ids, modality="video"), len(
                data.stimulus_ids["train"]), 1
        captions = load_captions(self.captions or _default_captions(self.root))
        missing = [i for i in ids if i not in captions]
        if missing:
            raise InputError(f"{self.identifier}: no captions for clip(s) {missing[:5]} in {self.captions}")
        per_clip = {len(captions[i]) for i in ids}
        if len(per_clip) != 1:
            raise InputError(f"{self.identifier}: clips have different numbers of captions {sorted(per_clip)}")
        k = per_clip.pop()
        texts = [c for i in ids for c in captions[i]]
        text_ids = [f"{i}.{j}" for i in ids for j in range(k)]
        return StimulusSet.from_texts("bold_moments/captions", texts, ids=text_ids), len(data.stimulus_ids["train"]), k

    def _device(self, candidate: Candidate | None = None) -> str:
        from cortexbench.device import resolve_device

        if self.device:
            return resolve_device(self.device)
        return getattr(candidate, "device", None) or resolve_device("auto")

    def _targets(self, split: str) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
        data = self.brain()
        keys = [(s, r) for s in data.subjects for r in data.regions]
        return [data.target(s, r, split) for s, r in keys], keys

    def _target_rdms(self, split: str, device: str):
        key = f"{split}|{device}"
        if key not in self._rdms:
            self._rdms[key] = condensed_rdms(self._targets(split)[0], device)
        return self._rdms[key]

    def partner_map(self) -> dict[str, list[str]]:
        return partners(list(self.brain().subjects), self.n_partners, self.partner_seed)

    # --- model scores ------------------------------------------------------------------------------------
    def __call__(self, candidate: Candidate) -> xr.Dataset:
        modality = "video" if self.route == "video" else "text"
        if modality not in candidate.modalities:
            raise InputError(f"{self.identifier} presents {modality} stimuli; model {candidate.identifier!r} "
                             f"accepts {sorted(candidate.modalities)}")
        data = self.brain()
        device = self._device(candidate)
        stimuli, n_train, per_clip = self.stimuli()
        layer_info = {layer.name: layer for layer in candidate.layers}
        layers = list(self.layers) if self.layers else list(layer_info)
        unknown = [name for name in layers if name not in layer_info]
        if unknown:
            raise InputError(f"{self.identifier}: model {candidate.identifier!r} has no layer(s) {unknown}")
        subjects, regions = data.subjects, data.regions
        raw = np.full((len(layers), len(regions), len(subjects), 2), np.nan)
        n_features = np.zeros(len(layers), dtype=np.int64)
        alphas = np.full((len(layers), len(regions), len(subjects), RIDGE_FOLDS), np.nan)
        pooling = "flatten" if self.route == "video" else "avg"
        stream = layer_features(candidate, stimuli, n_train, layers, pooling=pooling, groups=per_clip, device=device)
        for li, (name, train, test) in enumerate(progress.bar(stream, total=len(layers),
                                                              desc=f"{self.identifier}: layers")):
            n_features[li] = train.shape[1]
            scores, chosen = self._score_predictor(train, test, device)
            raw[li] = scores
            if chosen is not None:
                alphas[li] = chosen
        lower = self.lower_ceiling(device)
        coords = {"layer": layers, "depth": ("layer", [layer_info[n].depth for n in layers]),
                  "depth_bin": ("layer", [layer_info[n].depth_bin for n in layers]),
                  "region": regions, "subject": subjects, "split": list(SPLITS)}
        raw_da = xr.DataArray(raw, dims=("layer", "region", "subject", "split"), coords=coords,
                              attrs={"description": f"{self._metric_text()} of each layer for each target region, "
                                                    "subject and split; not ceiled"})
        head = apa.headline(raw_da, lower, n_bootstrap=self.n_bootstrap)
        variables: dict[str, Any] = {
            "ci_low": head["ci_low"], "ci_high": head["ci_high"],
            "lower_ceiling": lower,
            "n_vertices": xr.DataArray([[data.n_vertices(s, r) for s in subjects] for r in regions],
                                       dims=("region", "subject"), coords={"region": regions, "subject": subjects}),
            "n_features": xr.DataArray(n_features, dims="layer", coords={"layer": layers}),
        }
        if self.metric_name == "ridge":
            variables["alpha"] = xr.DataArray(alphas, dims=("layer", "region", "subject", "fold"),
                                              coords={"layer": layers, "region": regions, "subject": subjects})
        attrs = self._attrs(model=candidate.identifier, stimuli=stimuli)
        attrs.update({
            "ceiling_method": (f"lower: mean over {self.n_partners} random partner subjects (seed "
                               f"{self.partner_seed}) of the same-region brain-to-brain score, per region, subject "
                               "and split; headline divides by it per (region, subject)"),
            "error_method": f"bootstrap over subjects ({self.n_bootstrap} resamples, resample b = default_rng(b)): "
                            "SD of the headline",
            "selection_method": "per region the layer with the best subject-mean ceiled train score (cross-validated "
                                "on train stimuli); headline = mean over regions and subjects of the ceiled test "
                                "score of that layer",
            "best_layer": json.dumps(head["best_layer"]),
            "summary": "best layers: " + ", ".join(f"{r} {layer}" for r, layer in head["best_layer"].items()),
        })
        return assembly.make(score=head["score"], score_error=head["score_error"], ceiling=head["ceiling"],
                             raw=raw_da, attrs=attrs, **variables)

    def _score_predictor(self, train: np.ndarray, test: np.ndarray, device: str
                         ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores ``(region, subject, split)`` of one predictor for every subject's regions (and ridge alphas)."""
        data = self.brain()
        S, R = len(data.subjects), len(data.regions)
        out = np.empty((R, S, 2))
        if self.metric_name == "rsa":
            for k, (split, x) in enumerate(zip(SPLITS, (train, test))):
                scores = rsa_scores(condensed_rdms([x], device), self._target_rdms(split, device))[0]
                out[:, :, k] = scores.reshape(S, R).T
            return out, None
        if "ridge_targets" not in self._rdms:  # every subject's regions side by side, built once for all layers
            targets_train, _ = self._targets("train")
            groups = np.concatenate([np.full(t.shape[1], g) for g, t in enumerate(targets_train)])
            self._rdms["ridge_targets"] = (np.concatenate(targets_train, 1),
                                           np.concatenate(self._targets("test")[0], 1), groups)
        y_train, y_test, groups = self._rdms["ridge_targets"]
        result = grouped_ridge_cv(train, y_train, test, y_test, groups, device=device,
                                  n_targets_batch=self.n_targets_batch)
        out[:, :, 0] = result.train.reshape(S, R).T
        out[:, :, 1] = result.test.reshape(S, R).T
        return out, result.alphas.reshape(RIDGE_FOLDS, S, R).transpose(2, 1, 0)

    # --- brain to brain ----------------------------------------------------------------------------------
    def lower_ceiling(self, device: str | None = None) -> xr.DataArray:
        """Lower ceiling ``(region, subject, split)``: same-region scores of the partner pairs only."""
        device = device or self._device()
        if device not in self._lower:
            pairs = self._pairwise(device, same_region=True)
            self._lower[device] = apa.lower_ceiling(apa._select(pairs, apa.BRAIN_DIMS, None, self.identifier))
        return self._lower[device]

    def _pairwise(self, device: str, same_region: bool) -> xr.DataArray:
        """Pairwise scores ``(source_subject, source_region, region, subject, split)``, NaN for non-partners."""
        data = self.brain()
        subjects, regions = data.subjects, data.regions
        S, R = len(subjects), len(regions)
        out = np.full((S, R, R, S, 2), np.nan)
        sources_of = self.partner_map()
        if self.metric_name == "rsa":
            for k, split in enumerate(SPLITS):
                rdms = self._target_rdms(split, device)
                full = rsa_scores(rdms, rdms).reshape(S, R, S, R)                  # (src subj, src reg, subj, reg)
                for ti, target in enumerate(subjects):
                    for source in sources_of[target]:
                        si = subjects.index(source)
                        out[si, :, :, ti, k] = full[si, :, ti, :]
        else:
            for si, source in enumerate(progress.bar(subjects, desc=f"{self.identifier}: brain-to-brain ridge")):
                targets = [t for t in subjects if source in sources_of[t]]
                if not targets:
                    continue
                for ri, region in enumerate(regions):
                    tgt_regions = [region] if same_region else regions
                    keys = [(t, r) for t in targets for r in tgt_regions]
                    result = self._ridge(data.target(source, region, "train"), data.target(source, region, "test"),
                                         keys, device)
                    for (t, r), tr, te in zip(keys, result.train, result.test):
                        out[si, ri, regions.index(r), subjects.index(t)] = (tr, te)
        if same_region:
            keep = np.eye(R, dtype=bool)[None, :, :, None, None]
            out = np.where(keep, out, np.nan)
        return xr.DataArray(out, dims=("source_subject", "source_region", "region", "subject", "split"),
                            coords={"source_subject": subjects, "source_region": regions, "region": regions,
                                    "subject": subjects, "split": list(SPLITS)},
                            attrs={"description": f"{self._metric_text()} of a partner subject's region (source) "
                                                  "predicting a target subject's region; NaN for non-partners"})

    def _ridge(self, x_train: np.ndarray, x_test: np.ndarray, keys: list[tuple[str, str]], device: str):
        data = self.brain()
        y_train = [data.target(s, r, "train") for s, r in keys]
        y_test = [data.target(s, r, "test") for s, r in keys]
        groups = np.concatenate([np.full(y.shape[1], g) for g, y in enumerate(y_train)])
        return grouped_ridge_cv(x_train, np.concatenate(y_train, 1), x_test, np.concatenate(y_test, 1), groups,
                                device=device, n_targets_batch=self.n_targets_batch)

    def _loso(self, device: str) -> xr.DataArray:
        """LOSO-mean predictor scores ``(source_region, region, subject, split)``."""
        data = self.brain()
        subjects, regions = data.subjects, data.regions
        S, R = len(subjects), len(regions)
        out = np.full((R, R, S, 2), np.nan)
        for ti, target in enumerate(progress.bar(subjects, desc=f"{self.identifier}: leave-one-subject-out")):
            if self.metric_name == "rsa":
                for k, split in enumerate(SPLITS):
                    predictors = condensed_rdms([data.loso(target, r, split) for r in regions], device)
                    targets = self._target_rdms(split, device)[ti * R:(ti + 1) * R]
                    out[:, :, ti, k] = rsa_scores(predictors, targets)
            else:
                keys = [(target, r) for r in regions]
                for ri, region in enumerate(regions):
                    result = self._ridge(data.loso(target, region, "train"), data.loso(target, region, "test"),
                                         keys, device)
                    out[ri, :, ti, 0], out[ri, :, ti, 1] = result.train, result.test
        return xr.DataArray(out, dims=("source_region", "region", "subject", "split"),
                            coords={"source_region": regions, "region": regions, "subject": subjects,
                                    "split": list(SPLITS)},
                            attrs={"description": "leave-one-subject-out mean of the other subjects' region "
                                                  "(vertices with mean ncsnr >= threshold) predicting the subject"})

    def brain_to_brain(self) -> xr.Dataset:
        """Every region of each partner subject (and the LOSO mean) predicting every region of every subject."""
        device = self._device()
        pairs = self._pairwise(device, same_region=False)
        loso = self._loso(device)
        partner_map = self.partner_map()
        attrs = self._attrs(model=apa.BRAIN_MODEL, stimuli=None)
        attrs.update({"partners": json.dumps(partner_map), "n_pairs": sum(len(v) for v in partner_map.values())})
        data = self.brain()
        n_vertices = xr.DataArray([[data.n_vertices(s, r) for s in data.subjects] for r in data.regions],
                                  dims=("region", "subject"), coords={"region": data.regions, "subject": data.subjects})
        return apa.brain_to_brain_assembly(pairs, loso, attrs, n_bootstrap=self.n_bootstrap, n_vertices=n_vertices)

    # --- attributes --------------------------------------------------------------------------------------
    def _metric_text(self) -> str:
        return ("RSA: Pearson r between 1 - Pearson RDMs" if self.metric_name == "rsa" else
                "ridge linear predictivity: R^2 averaged over the region's vertices")

    def _attrs(self, model: str, stimuli: StimulusSet | None) -> dict[str, Any]:
        data = self.brain()
        config = {"metric": self.metric_name, "route": self.route, "rdm": "1 - Pearson r",
                  "rdm_comparison": "pearson", "ridge_alphas": "logspace(0, 9, 19)", "ridge_folds": RIDGE_FOLDS,
                  "ridge_kfold_seed": RIDGE_SEED, "ridge_alpha_sharing": "per (subject, region)",
                  "srp_eps": SRP_EPS, "pooling": "flatten" if self.route == "video" else "avg"}
        attrs = {"model": model, "benchmark": self.identifier, "benchmark_version": self.version,
                 "metric": self.metric_name, "metric_version": self.metric_version,
                 "metric_config": json.dumps(config), "regions": json.dumps(list(data.regions)),
                 "subjects": json.dumps(list(data.subjects)), "n_train": len(data.stimulus_ids["train"]),
                 "n_test": len(data.stimulus_ids["test"]), "ncsnr_threshold": self.threshold,
                 "srp_seed": SRP_SEED, "partner_seed": self.partner_seed, "n_partners": self.n_partners,
                 "bootstrap_seed": "resample b uses numpy default_rng(b)", "n_bootstrap": self.n_bootstrap,
                 "data_root": str(self.root), "imputed_values": json.dumps(data.imputed)}
        if stimuli is not None:
            attrs.update(stimulus_set=stimuli.identifier, stimulus_set_hash=stimuli.content_hash,
                         n_stimuli=len(stimuli))
        return attrs


def load_captions(path: str | Path) -> dict[str, list[str]]:
    """``{"0001": [5 captions], ...}`` from ``llm_frame_annotations.json`` (GIT captions of the middle frame)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"captions file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise InputError(f"captions file {path} is not valid JSON ({err})") from None
    out = {}
    for key, value in raw.items():
        texts = value.get("GIT-git-large-coco") if isinstance(value, dict) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
            raise InputError(f"captions file {path}: entry {key!r} has no list of caption strings "
                             "(expected {\"GIT-git-large-coco\": [...]})")
        out[str(key)] = texts
    return out


def _default_captions(root: str | None) -> Path:
    """The dataset's own captions file when the root has it, else the declared (mirrored) copy."""
    if root:
        local = Path(root) / "derivatives" / "stimuli_metadata" / "llm_frame_annotations.json"
        if local.is_file():
            return local
    from cortexbench.data import resolve

    from . import BOLD_MOMENTS_METADATA

    return resolve(BOLD_MOMENTS_METADATA, "derivatives/stimuli_metadata/llm_frame_annotations.json")
