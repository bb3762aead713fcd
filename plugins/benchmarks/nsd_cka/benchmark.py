"""NSD representational alignment with RBF CKA, after Shen et al. (2025, FloyedShen/BrainAlign).

For each subject, every representational layer of the model (classifier heads left out and the depth bins recomputed
over the rest, as Shen et al. never hook the classifier; pooled: global average over space or tokens) is compared with
every region's repeat-averaged responses to the subject's non-shared images by RBF CKA at every sigma of the grid
(features z-scored per column, the same sigma on both sides, biased HSIC), in one batched call of the metrics plugin's
``rbf_cka_grid`` that consumes layers one at a time. The assembly keeps the whole layer x region x subject x sigma
array; the headline and the paper's summaries are computed from it by :mod:`.analysis`.

The inter-subject ceiling compares subjects with each other on the shared images they all saw: for every pair of
subjects, every region of one against every region of the other (the brain-to-brain assembly that ``cortexbench
ceiling`` stores, with the same sigma dimension as the model scores), and per region the mean over partner subjects
of the same-region CKA. The model is scored on those shared images too, so that ``ceiled_score`` divides like by like.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr

from cortexbench import alignment_patterns as apa
from cortexbench import assembly, progress
from cortexbench.errors import DataError, InputError
from cortexbench.interfaces import Candidate, Layer, rebin
from cortexbench.plugins.metrics.cka import VERSION as CKA_VERSION
from cortexbench.plugins.metrics.cka import functional as F
from cortexbench.stimuli import StimulusSet, check_same_stimuli

from . import analysis
from . import regions as region_tables
from .responses import RegionResponses

LAYOUTS = ("native", "algonauts2023", "algonauts2023-sample")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
MIN_SHARED = 3


@dataclass
class NSDCKABenchmark:
    """One NSD layout scored with Shen et al.'s RBF-CKA grid; options map to ``--benchmark-option KEY=VALUE``."""

    identifier: str
    version: str
    layout: str
    root: str | None = None
    subjects: Sequence[str] | None = None
    sessions: int | Sequence[int] | None = None
    regions: Sequence[str] | None = None
    hcp_atlas: str | None = None
    nsd_root: str | None = None
    sigmas: Sequence[float] = F.SHEN_SIGMAS
    sigma: float = analysis.HEADLINE_SIGMA
    depth_bin: int = analysis.HEADLINE_BIN
    top_fraction: float = analysis.TOP_FRACTION
    layers: Sequence[str] | None = None
    layers_per_pass: int = 16
    modality: str | None = None
    ceiling: bool = True
    device: str | None = None
    dtype: str = "float32"
    chunk_size: int | None = None
    _pairs_cache: dict = field(default_factory=dict, init=False, repr=False)

    metric_identifier = "rbf-cka"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InputError(f"{self.identifier}: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.sessions is not None and self.layout != "native":
            raise InputError(f"{self.identifier}: sessions= applies to the native NSD layout only")
        if (self.hcp_atlas or self.nsd_root) and self.layout != "algonauts2023":
            raise InputError(f"{self.identifier}: hcp_atlas= and nsd_root= apply to the Algonauts-2023 layout only")
        if self.root and self.layout == "algonauts2023-sample":
            raise InputError(f"{self.identifier}: the sample is a declared dataset; it takes no root=")
        self.sigmas = [float(s) for s in np.atleast_1d(self.sigmas)]
        if not any(math.isclose(float(self.sigma), s) for s in self.sigmas):
            raise InputError(f"{self.identifier}: the headline sigma {self.sigma} must be one of sigmas {self.sigmas}")
        if self.dtype not in DTYPES:
            raise InputError(f"{self.identifier}: dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if int(self.layers_per_pass) < 1:
            raise InputError(f"{self.identifier}: layers_per_pass must be at least 1, got {self.layers_per_pass}")
        if self.modality not in (None, "image", "text"):
            raise InputError(f"{self.identifier}: modality must be 'image' or 'text', got {self.modality!r}")
        analysis.top_k(180, self.top_fraction)  # validates the fraction

    # --- data ----------------------------------------------------------------------------------------------
    @property
    def source(self):
        if not hasattr(self, "_source"):
            if self.layout == "native":
                from .native import NativeNSD

                self._source = NativeNSD(self.root, sessions=self.sessions, regions=self.regions,
                                         benchmark=self.identifier)
            elif self.layout == "algonauts2023":
                from .algonauts import Algonauts2023

                self._source = Algonauts2023(self.root, regions=self.regions, hcp_atlas=self.hcp_atlas,
                                             nsd_root=self.nsd_root, benchmark=self.identifier)
            else:
                from .sample import AlgonautsSample

                self._source = AlgonautsSample(regions=self.regions, benchmark=self.identifier)
        return self._source

    def subject_list(self) -> list[str]:
        """The requested subjects, or Shen et al.'s four (subj01, 02, 05, 07) that the root holds."""
        if self.layout == "algonauts2023-sample":
            return list(self.source.subjects)
        if self.subjects is not None:
            return [str(s) for s in self.subjects]
        from .native import SUBJECTS

        present = [s for s in SUBJECTS if (self.source.root / s).is_dir()
                   or (self.source.root / "nsddata_betas" / "ppdata" / s).is_dir()]
        if not present:
            raise DataError(f"{self.identifier}: none of Shen et al.'s subjects {list(SUBJECTS)} is under "
                            f"{self.source.root}; pass subjects=[...] or check the root.\n{self.source.help}")
        return present

    def load(self) -> tuple[list[str], dict[str, RegionResponses], list[str]]:
        """Subjects, their responses, and the regions every subject has (in the first subject's order)."""
        subjects = self.subject_list()
        responses = {s: self.source.responses(s) for s in progress.bar(subjects, desc=f"{self.identifier}: data")}
        common = set.intersection(*(set(r.regions) for r in responses.values()))
        regions = [r for r in responses[subjects[0]].regions if r in common]
        if not regions:
            raise DataError(f"{self.identifier}: the subjects {subjects} share no region")
        for subject, resp in responses.items():
            if resp.n_model < 2:
                raise DataError(f"{self.identifier}: {subject} has {resp.n_model} non-shared images; CKA needs >= 2")
        return subjects, responses, regions

    def _stimuli(self, subject: str, resp: RegionResponses, modality: str,
                 ids: Sequence[str] | None = None) -> StimulusSet:
        """The model rows' stimuli, or those of the rows ``ids`` (the shared images)."""
        kind = "captions" if modality == "text" else "images"
        name = f"{self.identifier}:{subject}:{kind}" if ids is None else f"{self.identifier}:shared:{kind}"
        if modality == "text":
            return self.source.captions(subject, resp, name, ids)
        return self.source.images(subject, resp, name, ids)

    def _modality(self, candidate: Candidate) -> str:
        accepted = set(candidate.modalities)
        if self.modality is not None:
            if self.modality not in accepted:
                raise InputError(f"{self.identifier}: modality={self.modality} but model {candidate.identifier!r} "
                                 f"accepts {sorted(accepted)}")
            return self.modality
        if "image" in accepted:
            return "image"
        if "text" in accepted:
            return "text"
        raise InputError(f"{self.identifier}: model {candidate.identifier!r} accepts {sorted(accepted)}; this "
                         "benchmark presents images or their COCO captions")

    # --- scoring -------------------------------------------------------------------------------------------
    def _device(self, candidate: Any = None) -> str:
        return self.device or getattr(candidate, "device", None) or "cpu"

    def _grid(self, sources, targets, device: str) -> np.ndarray:
        with warnings.catch_warnings():  # read-only memory maps are copied by torch, never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return F.rbf_cka_grid(sources, targets, self.sigmas, zscore=True, hsic="biased", device=device,
                                  dtype=DTYPES[self.dtype], chunk_size=self.chunk_size).numpy()

    def _stream(self, candidate: Candidate, stimuli: StimulusSet, names: list[str]) -> Iterator[np.ndarray]:
        """Layers in groups of ``layers_per_pass``: one extraction pass per group, one layer in memory at a time."""
        step = int(self.layers_per_pass)
        for start in range(0, len(names), step):
            group = names[start:start + step]
            activations = candidate.activations(stimuli, group, pooling="avg")
            for name in group:
                yield np.asarray(activations.pop(name).values)

    def representational_layers(self, candidate: Candidate) -> tuple[dict[str, Layer], list[str]]:
        """The model's layers without its classifier head, re-binned over what remains; and the head layers.

        Shen et al. hook the blocks/stages/layers/features containers, never the classifier, so their depth bins
        hold representations only; class logits would otherwise land in bin 6 or 7 of a short layer list.
        """
        heads = [layer.name for layer in candidate.layers if layer.head]
        kept = [layer for layer in candidate.layers if not layer.head]
        if not kept:
            raise InputError(f"{self.identifier}: model {candidate.identifier!r} has only head layers {heads}; "
                             "the depth bins need representational layers")
        info = {layer.name: layer for layer in rebin(kept)}
        if self.layers:
            unknown = [n for n in self.layers if n not in info and n not in heads]
            if unknown:
                raise InputError(f"{self.identifier}: model {candidate.identifier!r} has no layer(s) {unknown}")
            named_heads = [n for n in self.layers if n in heads]
            if named_heads:
                raise InputError(f"{self.identifier}: layer(s) {named_heads} of {candidate.identifier!r} are the "
                                 "classifier head, which Shen et al.'s depth bins leave out; choose among "
                                 f"{list(info)[:6]}...")
        return info, heads

    def _scores(self, candidate: Candidate, responses: dict[str, RegionResponses], subjects: list[str],
                regions: list[str], names: list[str], modality: str, device: str,
                shared: Sequence[str] | None = None) -> tuple[np.ndarray, list[int]]:
        """``(layer, region, subject, sigma)`` CKA on each subject's model rows, or on the ``shared`` rows."""
        values = np.empty((len(names), len(regions), len(subjects), len(self.sigmas)))
        n_stimuli = []
        what = "subjects" if shared is None else "shared images"
        for si, subject in enumerate(progress.bar(subjects, desc=f"{self.identifier}: {what}")):
            resp = responses[subject]
            stimuli = self._stimuli(subject, resp, modality, shared)
            expected = resp.model_ids if shared is None else tuple(shared)
            check_same_stimuli(expected, stimuli.stimulus_ids, f"{self.identifier}: {subject} responses vs stimuli")
            views = ([resp.model_view(r) for r in regions] if shared is None
                     else (resp.shared_view(r, shared) for r in regions))
            values[:, :, si, :] = self._grid(self._stream(candidate, stimuli, names), views, device)
            n_stimuli.append(len(stimuli))
        return values, n_stimuli

    def __call__(self, candidate: Candidate) -> xr.Dataset:
        modality = self._modality(candidate)
        device = self._device(candidate)
        info, heads = self.representational_layers(candidate)
        names = list(self.layers) if self.layers else list(info)
        subjects, responses, regions = self.load()
        values, n_stimuli = self._scores(candidate, responses, subjects, regions, names, modality, device)
        coords = {"layer": names, "depth": ("layer", [info[n].depth for n in names]),
                  "depth_bin": ("layer", [info[n].depth_bin for n in names]), "region": regions,
                  "network": ("region", region_tables.yeo7_networks(regions)),
                  "subject": subjects, "sigma": self.sigmas}
        dims = ("layer", "region", "subject", "sigma")
        raw = xr.DataArray(values, dims=dims, coords=coords,
                           attrs={"description": "RBF CKA of each pooled layer with each region's responses to the "
                                                 "subject's non-shared images (features z-scored per column), not "
                                                 "ceiled"})
        raw_shared = None
        shared, _ = self.common_shared(responses, subjects) if self.ceiling else (None, "")
        if shared is not None:
            on_shared, _ = self._scores(candidate, responses, subjects, regions, names, modality, device, shared)
            raw_shared = xr.DataArray(
                on_shared, dims=dims, coords=coords,
                attrs={"description": f"RBF CKA of each pooled layer with each region's responses to the "
                                      f"{len(shared)} shared images every subject saw (the ceiling's stimuli): "
                                      "the numerator of ceiled_score", "n_shared": len(shared)})
        return self._assemble(candidate, raw, responses, regions, subjects, n_stimuli, modality, device,
                              raw_shared=raw_shared, heads=heads)

    def _assemble(self, candidate, raw, responses, regions, subjects, n_stimuli, modality, device, *,
                  raw_shared: xr.DataArray | None = None, heads: Sequence[str] = ()) -> xr.Dataset:
        head = analysis.headline(raw, sigma=self.sigma, depth_bin=self.depth_bin, fraction=self.top_fraction)
        variables: dict[str, Any] = {
            "ci_low": head["ci_low"], "ci_high": head["ci_high"],
            "score_per_subject": head["per_subject"].drop_vars("sigma", errors="ignore"),
            "top_regions": head["top_regions"],
            "depth_profile": analysis.depth_profile(raw, self.top_fraction),
            "region_depth": analysis.by_depth_bin(raw),
            "n_columns": xr.DataArray([[responses[s].n_columns[r] for s in subjects] for r in regions],
                                      dims=("region", "subject"), coords={"region": regions, "subject": subjects},
                                      attrs={"description": "voxels (native) or vertices (fsaverage) per region"}),
            "n_stimuli": xr.DataArray(n_stimuli, dims="subject", coords={"subject": subjects}),
        }
        ceiling, ceiling_method = math.nan, "none"
        if self.ceiling:
            per_region, reason = self.ceiling_by_region(responses, regions, subjects, device)
            if per_region is not None and raw_shared is not None:
                per_subject = analysis.top_mean(analysis.select_sigma(per_region, self.sigma), self.top_fraction)
                ceiling = float(per_subject.mean())
                on_shared = analysis.headline(raw_shared, sigma=self.sigma, depth_bin=self.depth_bin,
                                              fraction=self.top_fraction)
                variables["ceiling_by_region"] = per_region
                variables["ceiling_per_subject"] = per_subject.drop_vars("sigma", errors="ignore")
                variables["raw_shared"] = raw_shared
                variables["score_shared"] = xr.DataArray(
                    on_shared["score"], attrs={"description": "the headline computed from raw_shared"})
                variables["score_shared_per_subject"] = on_shared["per_subject"].drop_vars("sigma", errors="ignore")
                variables["ceiled_score"] = xr.DataArray(
                    on_shared["score"] / ceiling,
                    attrs={"description": "score_shared / ceiling: model and ceiling on the same shared images"})
                ceiling_method = (
                    f"inter-subject: per region and subject, the mean over partner subjects of the same-region RBF "
                    f"CKA on the {per_region.attrs['n_shared']} shared images all subjects saw; the scalar is the "
                    f"mean over subjects of the top {self.top_fraction:.0%} regions at sigma {self.sigma:g} (the "
                    "headline's aggregation). The score is NOT divided by it (Shen et al. report raw CKA); "
                    "ceiled_score = score_shared / ceiling, where score_shared is the headline on the same shared "
                    "images (raw_shared), so the ratio is like-for-like")
            else:
                ceiling_method = f"none: {reason}"
        else:
            ceiling_method = "none: disabled (ceiling=false)"
        k, used = head["k"], head["depth_bin"]
        first = subjects[0]
        attrs = {
            "model": candidate.identifier, "benchmark": self.identifier, "benchmark_version": self.version,
            "metric": self.metric_identifier, "metric_version": CKA_VERSION,
            "metric_config": json.dumps({"kernel": "rbf", "sigmas": self.sigmas, "zscore": True, "hsic": "biased",
                                         "pooling": "avg", "dtype": self.dtype}),
            "layout": self.layout, "data_source": json.dumps({s: responses[s].source for s in subjects}),
            "stimulus_modality": modality, "subjects": json.dumps(subjects), "n_regions": len(regions),
            "headline_sigma": float(self.sigma), "headline_depth_bin": int(used),
            "requested_depth_bin": int(self.depth_bin), "top_fraction": float(self.top_fraction), "top_k": int(k),
            "excluded_head_layers": json.dumps(list(heads)),
            "score_definition": (f"per subject: mean over the top {self.top_fraction:.0%} of regions ({k} of "
                                 f"{len(regions)}) of the RBF CKA (sigma {self.sigma:g}) averaged over the layers in "
                                 f"depth bin {used} (0-based bins floor(8 i / L) over the L representational "
                                 "layers: classifier heads left out); then the mean over subjects"),
            "ceiling_method": ceiling_method,
            "error_method": (f"standard error of the mean over {len(subjects)} subjects; ci_low/ci_high: t-based 95 % "
                             "interval" if len(subjects) > 1 else "none: a single subject"),
            "summary": (f"depth bin {used}: top {k}/{len(regions)} regions of {first}: "
                        f"{', '.join(head['top_regions'].sel(subject=first).values.tolist())}\n"
                        "per subject " + ", ".join(f"{s} {v:.4f}" for s, v in
                                                   zip(subjects, head["per_subject"].values.tolist()))),
        }
        return assembly.make(score=head["score"], score_error=head["score_error"], ceiling=ceiling, raw=raw,
                             attrs=attrs, **variables)

    # --- between subjects ----------------------------------------------------------------------------------
    @staticmethod
    def common_shared(responses: dict[str, RegionResponses], subjects: list[str]) -> tuple[list[str] | None, str]:
        """The shared images every subject saw (sorted ids), or None and why not."""
        if len(subjects) < 2:
            return None, "a single subject allows no between-subject comparison"
        shared = sorted(set.intersection(*(set(responses[s].shared_ids) for s in subjects)))
        if len(shared) < MIN_SHARED:
            return None, (f"the subjects {subjects} share {len(shared)} image(s) among their shared rows; at least "
                          f"{MIN_SHARED} are needed")
        return shared, ""

    def pairs(self, responses: dict[str, RegionResponses], regions: list[str], subjects: list[str],
              device: str) -> tuple[xr.DataArray | None, str]:
        """Every region of each subject against every region of each other subject on the common shared images.

        ``(source_subject, source_region, region, subject, sigma)``; NaN where source_subject == subject. Each
        unordered pair is computed once (CKA is symmetric).
        """
        shared, reason = self.common_shared(responses, subjects)
        if shared is None:
            return None, reason
        key = (tuple(subjects), tuple(regions), tuple(shared))
        if key not in self._pairs_cache:
            n = len(subjects)
            out = np.full((n, len(regions), len(regions), n, len(self.sigmas)), np.nan)
            todo = [(i, j) for i in range(n) for j in range(i + 1, n)]
            for i, j in progress.bar(todo, desc=f"{self.identifier}: subject pairs"):
                a = (responses[subjects[i]].shared_view(r, shared) for r in regions)
                b = [responses[subjects[j]].shared_view(r, shared) for r in regions]
                grid = self._grid(a, b, device)                      # (source region of i, region of j, sigma)
                out[i, :, :, j] = grid
                out[j, :, :, i] = grid.transpose(1, 0, 2)
            self._pairs_cache[key] = xr.DataArray(
                out, dims=("source_subject", "source_region", "region", "subject", "sigma"),
                coords={"source_subject": subjects, "source_region": regions, "region": regions,
                        "subject": subjects, "sigma": self.sigmas},
                attrs={"description": "RBF CKA between regions of two subjects on their common shared images",
                       "n_shared": len(shared)})
        return self._pairs_cache[key], ""

    def ceiling_by_region(self, responses, regions, subjects, device) -> tuple[xr.DataArray | None, str]:
        """Mean over partner subjects of the same-region CKA: ``(region, subject, sigma)``."""
        pairs, reason = self.pairs(responses, regions, subjects, device)
        if pairs is None:
            return None, reason
        same = np.stack([pairs.values[:, k, k] for k in range(len(regions))], axis=0)   # (region, source, subj, sigma)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(same, axis=1)
        return xr.DataArray(mean, dims=("region", "subject", "sigma"),
                            coords={"region": regions, "subject": subjects, "sigma": self.sigmas},
                            attrs={"description": "inter-subject ceiling: mean over partner subjects of the "
                                                  "same-region RBF CKA on the shared images",
                                   "n_shared": pairs.attrs["n_shared"]}), ""

    def brain_to_brain(self) -> xr.Dataset:
        """The brain-to-brain assembly for ``cortexbench ceiling`` / ``apa``.

        ``raw`` keeps the ``sigma`` dimension of the model scores, so ``apa --select sigma=X`` compares model and
        brains at the same sigma; the stored headline (mean lower ceiling) is at the headline sigma.
        """
        subjects, responses, regions = self.load()
        pairs, reason = self.pairs(responses, regions, subjects, self._device())
        if pairs is None:
            raise InputError(f"{self.identifier}: no brain-to-brain comparison: {reason}")
        sigma = float(analysis.select_sigma(pairs, self.sigma)["sigma"])
        attrs = {"benchmark": self.identifier, "benchmark_version": self.version, "metric": self.metric_identifier,
                 "metric_version": CKA_VERSION, "layout": self.layout, "subjects": json.dumps(subjects),
                 "n_shared": int(pairs.attrs["n_shared"]), "headline_sigma": float(self.sigma),
                 "description": "RBF CKA of every region of each partner subject with every region of each subject "
                                "on their common shared images (features z-scored per column)"}
        return apa.brain_to_brain_assembly(pairs, None, attrs, select={"sigma": sigma})

