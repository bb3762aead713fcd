"""Alignment-pattern analysis (APA) on stored score assemblies, after Höfling et al. (ICLR 2026).

An *alignment pattern* of a predictor (a model layer, or one subject's brain region) for a target subject is the
vector of its scores over all target regions. Brains predict brains with a characteristic pattern (V1 predicts V1
and V2 best, MT predicts MT and MST best, ...); the analysis asks whether the model layer that scores best for a
region also reproduces that region's pattern.

Inputs are plain score assemblies from the registry (any benchmark with several regions and subjects):

* model assemblies: ``raw`` with dims ``("layer", "region", "subject")`` and optionally ``"split"``
  (``"train"``/``"test"``); ``region`` is the target region;
* the brain-to-brain assembly (``attrs["model"] == "brain-to-brain"``): ``raw`` with dims
  ``("source_subject", "source_region", "region", "subject")`` (+ optional ``"split"``), NaN where a pair was not
  computed (always where source_subject == subject), and optionally ``loso`` with dims
  ``("source_region", "region", "subject")`` (+ ``"split"``) for the leave-one-subject-out mean predictor.

Definitions (all on the ``test`` split unless stated; "outcome" is the raw score or the score divided by a ceiling):

* lower ceiling of (region r, subject s): mean over source subjects p of the pairwise score p.r -> s.r;
  upper ceiling: the LOSO-mean predictor's score (others).r -> s.r;
* brain-brain APS(s, r): mean over the partners p of s of Pearson(T[p, r, :, s], mean pattern of r over every pair
  in which s is neither source nor target), where T[p, r, :, s] is the pattern of p.r over s's target regions;
* model-brain APS(s, layer, r): mean over p of Pearson(model pattern of the layer for s, T[p, r, :, s]) (a mean of
  correlations, not a correlation with the mean pattern);
* per (model, region): best layer by the subject-averaged outcome on the train split; test values reported;
  1000-sample bootstrap over subjects (resample b drawn by ``numpy.random.default_rng(b)``), 95 % percentile CIs;
* "effectively equivalent" models: subject-mean at least the lower CI bound of the best model, separately for the
  outcome and for APS; ``equivalent_both`` marks the candidates that pass both. Models whose pattern rests on fewer
  than 2 subjects (``n_subjects``) are listed but take no part in the best-model and equivalence tests
  (``eligible``): their between-subject spread, hence their CI, is undefined.

Pure numpy/xarray: no torch, no pandas, so it runs wherever the registry can be read.
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .errors import InputError

BRAIN_MODEL = "brain-to-brain"
MODEL_DIMS = ("layer", "region", "subject")
BRAIN_DIMS = ("source_subject", "source_region", "region", "subject")
LOSO_DIMS = ("source_region", "region", "subject")
SPLITS = ("train", "test")
OUTCOMES = ("score", "score_norm_lower", "score_norm_upper")
CI = (2.5, 97.5)
#: Fewest subjects behind an alignment pattern for a model to enter the best-model / equivalence tests.
MIN_SUBJECTS = 2


# --- reading assemblies ------------------------------------------------------------------------------------
def _with_split(raw: xr.DataArray) -> xr.DataArray:
    """Assemblies without a split dimension are treated as test-only (layer selection then sees test scores)."""
    if "split" in raw.dims:
        missing = [s for s in SPLITS if s not in [str(v) for v in raw["split"].values]]
        if "test" in missing:
            raise InputError(f"scores have a 'split' dimension without a 'test' entry (splits "
                             f"{list(raw['split'].values)}); APA reports test scores")
        if "train" in missing:  # select on test, as documented for split-less assemblies
            raw = xr.concat([raw, raw.sel(split="test").assign_coords(split="train")], dim="split")
        return raw.sel(split=list(SPLITS))
    return xr.concat([raw.assign_coords(split=s) for s in SPLITS], dim="split")


def _select(raw: xr.DataArray, core: Sequence[str], select: Mapping[str, Any] | None, what: str,
            hint: str = "") -> xr.DataArray:
    """``raw`` at one value of every non-core dimension, as ``(*core, split)``.

    A selected dimension that ``raw`` lacks is an error: silently ignoring it would compare, say, a model at sigma X
    with a brain assembly at some other sigma.
    """
    select = dict(select or {})
    absent = [k for k in select if k not in raw.dims]
    if absent:
        raise InputError(f"{what}: cannot select {', '.join(f'{k}={select[k]!r}' for k in absent)}: 'raw' has no "
                         f"dimension {absent[0]!r} (its dims are {list(raw.dims)}). {hint or 'Drop that --select.'}")
    if select:
        raw = raw.sel(select)
    extra = [d for d in raw.dims if d not in (*core, "split")]
    if extra:
        raise InputError(f"{what}: 'raw' has dimension(s) {extra} beyond {list(core)}; choose one value of each with "
                         f"select={{{', '.join(repr(d) + ': ...' for d in extra)}}} (e.g. --select {extra[0]}=VALUE)")
    missing = [d for d in core if d not in raw.dims]
    if missing:
        raise InputError(f"{what}: 'raw' lacks dimension(s) {missing}; APA needs {list(core)} "
                         f"(+ optional 'split'), got {list(raw.dims)}")
    return _with_split(raw).transpose(*core, "split").astype(float)


def _name(ds: xr.Dataset) -> str:
    return f"{ds.attrs.get('model', '?')} on {ds.attrs.get('benchmark', '?')}"


def model_scores(ds: xr.Dataset, select: Mapping[str, Any] | None = None) -> xr.DataArray:
    """``raw`` of a model assembly as ``(layer, region, subject, split)``."""
    if "raw" not in ds:
        raise InputError(f"{_name(ds)}: no 'raw' variable; is this a score assembly?")
    return _select(ds["raw"], MODEL_DIMS, select, _name(ds),
                   "APA compares models and brains at the same value of every selected dimension; leave this model "
                   "out (--models) or drop that --select")


def brain_scores(ds: xr.Dataset, select: Mapping[str, Any] | None = None
                 ) -> tuple[xr.DataArray, xr.DataArray | None]:
    """``raw`` (pairwise) as ``(source_subject, source_region, region, subject, split)`` and ``loso`` if stored."""
    if ds.attrs.get("model") != BRAIN_MODEL:
        raise InputError(f"{_name(ds)} is not a brain-to-brain assembly (attrs['model'] must be {BRAIN_MODEL!r}); "
                         f"run `cortexbench ceiling {ds.attrs.get('benchmark', 'BENCHMARK')}` first")
    bench = ds.attrs.get("benchmark", "BENCHMARK")
    hint = (f"The brain-to-brain assembly must carry the same dimensions as the model scores, so both sides are "
            f"compared at the selected value: re-run `cortexbench ceiling {bench}` (with the current plugin version) "
            "or drop that --select")
    pairs = _select(ds["raw"], BRAIN_DIMS, select, _name(ds), hint)
    loso = _select(ds["loso"], LOSO_DIMS, select, _name(ds) + " (loso)", hint) if "loso" in ds else None
    return pairs, loso


# --- ceilings and normalization ----------------------------------------------------------------------------
def lower_ceiling(pairs: xr.DataArray) -> xr.DataArray:
    """Mean over source subjects of the same-region pairwise score: ``(region, subject, split)``."""
    regions = [str(r) for r in pairs["region"].values]
    sources = set(str(r) for r in pairs["source_region"].values)
    missing = [r for r in regions if r not in sources]
    if missing:
        raise InputError(f"brain-to-brain scores have target region(s) {missing} that never appear as a source "
                         "region, so their lower ceiling is undefined")
    diag = xr.concat([pairs.sel(source_region=r, region=r, drop=True) for r in regions], dim="region")
    diag = diag.assign_coords(region=regions)
    with np.errstate(invalid="ignore"):
        out = diag.mean("source_subject", skipna=True)
    out.attrs["description"] = "lower noise ceiling: mean over partner subjects of the same-region pairwise score"
    return out.transpose("region", "subject", "split", ...)


def upper_ceiling(loso: xr.DataArray | None) -> xr.DataArray | None:
    """The LOSO-mean predictor's same-region score: ``(region, subject, split)``."""
    if loso is None:
        return None
    regions = [str(r) for r in loso["region"].values]
    out = xr.concat([loso.sel(source_region=r, region=r, drop=True) for r in regions], dim="region")
    out = out.assign_coords(region=regions)
    out.attrs["description"] = "upper noise ceiling: leave-one-subject-out mean predictor, same region"
    return out.transpose("region", "subject", "split", ...)


def outcome(scores: xr.DataArray, kind: str, lower: xr.DataArray, upper: xr.DataArray | None) -> xr.DataArray:
    """Raw scores, or scores divided by the ceiling of their target (region, subject, split)."""
    if kind == "score":
        return scores
    if kind == "score_norm_lower":
        ceiling = lower
    elif kind == "score_norm_upper":
        if upper is None:
            raise InputError("outcome 'score_norm_upper' needs the leave-one-subject-out scores ('loso') in the "
                             "brain-to-brain assembly; use 'score_norm_lower' or 'score'")
        ceiling = upper
    else:
        raise InputError(f"outcome must be one of {OUTCOMES}, got {kind!r}")
    _check_subset(scores, ceiling, "subject")
    _check_subset(scores, ceiling, "region")
    return scores / ceiling.sel(region=scores["region"], subject=scores["subject"])


def _check_subset(scores: xr.DataArray, reference: xr.DataArray, dim: str) -> None:
    have = set(str(v) for v in reference[dim].values)
    missing = [str(v) for v in scores[dim].values if str(v) not in have]
    if missing:
        raise InputError(f"model scores have {dim}(s) {missing} that the brain-to-brain assembly lacks "
                         f"(it has {sorted(have)}); score the same {dim}s or drop them")


# --- patterns and APS --------------------------------------------------------------------------------------
def _zscore_rows(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm, so a dot product is a Pearson correlation."""
    x = x - x.mean(-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / norm


def _present(rows: np.ndarray, what: str) -> np.ndarray:
    """True for complete patterns, False for absent ones (all NaN); partial patterns are an error."""
    finite = np.isfinite(rows)
    complete, empty = finite.all(-1), (~finite).all(-1)
    partial = ~(complete | empty)
    if partial.any():
        raise InputError(f"{what}: {int(partial.sum())} alignment pattern(s) have scores for only some target "
                         "regions; every stored pair needs all target regions on the test split")
    return complete


def brain_patterns(pairs: xr.DataArray) -> xr.DataArray:
    """Test-split patterns ``(source_subject, source_region, subject, region)``: rows over target regions."""
    return pairs.sel(split="test", drop=True).transpose("source_subject", "source_region", "subject", "region")


def brain_brain_aps(patterns: xr.DataArray) -> xr.DataArray:
    """APS of each subject's target patterns with the reference pattern that excludes the subject: ``(region, subject)``.

    ``region`` here is the predictor (source) region r whose patterns are compared.
    """
    values = patterns.values                                      # (P, R_src, S, R_tgt)
    present = _present(values, "brain-to-brain patterns")        # (P, R_src, S)
    sources = [str(v) for v in patterns["source_subject"].values]
    subjects = [str(v) for v in patterns["subject"].values]
    z = _zscore_rows(np.where(present[..., None], values, 0.0))
    out = np.full((values.shape[1], len(subjects)), np.nan)
    for si, subject in enumerate(subjects):
        keep = np.array([s != subject for s in sources])[:, None, None] & present
        keep[:, :, si] = False                                   # s is neither source nor target
        count = keep.sum((0, 2))                                  # (R_src,)
        reference = np.where(keep[..., None], values, 0.0).sum((0, 2)) / np.maximum(count, 1)[:, None]
        ref_z = _zscore_rows(reference)                          # (R_src, R_tgt)
        corr = np.einsum("prk,rk->pr", z[:, :, si], ref_z)       # (P, R_src)
        mine = present[:, :, si]
        with np.errstate(invalid="ignore"):
            aps = np.where(mine, corr, 0.0).sum(0) / mine.sum(0)
        out[:, si] = np.where((count > 0) & (mine.sum(0) > 0), aps, np.nan)
    return xr.DataArray(out, dims=("region", "subject"),
                        coords={"region": [str(v) for v in patterns["source_region"].values], "subject": subjects},
                        attrs={"description": "brain-brain APS: mean over partners of Pearson(target pattern, "
                                              "reference pattern without the subject)"})


def model_brain_aps(model_patterns: xr.DataArray, patterns: xr.DataArray) -> xr.DataArray:
    """Mean over partners of Pearson(layer pattern, brain target pattern of region r): ``(layer, region, subject)``.

    ``model_patterns`` is ``(layer, region, subject)`` on the test split, ``region`` the target regions.
    """
    regions = [str(v) for v in patterns["region"].values]
    missing = [r for r in regions if r not in set(str(v) for v in model_patterns["region"].values)]
    if missing:
        raise InputError(f"model scores lack target region(s) {missing} of the brain-to-brain patterns")
    subjects = [str(v) for v in model_patterns["subject"].values]
    _check_subset(model_patterns, patterns, "subject")
    q = model_patterns.sel(region=regions).transpose("layer", "subject", "region").values     # (L, S, R)
    brain = patterns.sel(subject=subjects).values                                              # (P, R_src, S, R)
    present = _present(brain, "brain-to-brain patterns")
    bz = _zscore_rows(np.where(present[..., None], brain, 0.0))
    qz = _zscore_rows(q)
    corr = np.einsum("lsk,prsk->lrsp", qz, bz)                                                 # (L, R_src, S, P)
    weight = present.transpose(1, 2, 0)[None]                                                  # (1, R_src, S, P)
    with np.errstate(invalid="ignore"):
        aps = np.where(weight, corr, 0.0).sum(-1) / weight.sum(-1)
    return xr.DataArray(aps, dims=("layer", "region", "subject"),
                        coords={"layer": model_patterns["layer"].values,
                                "region": [str(v) for v in patterns["source_region"].values], "subject": subjects},
                        attrs={"description": "model-brain APS: mean over partners of Pearson(layer pattern, brain "
                                              "target pattern of the region)"})


# --- the full analysis -------------------------------------------------------------------------------------
def bootstrap_subjects(n_subjects: int, n_bootstrap: int) -> np.ndarray:
    """``(n_bootstrap, n_subjects)`` subject indices; resample b is drawn by ``default_rng(b)`` (paired across models)."""
    return np.stack([np.random.default_rng(b).choice(n_subjects, size=n_subjects, replace=True)
                     for b in range(n_bootstrap)]) if n_bootstrap else np.zeros((0, n_subjects), dtype=int)


def _boot_mean(values: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """``values`` (..., S) -> nan-mean over each resample's subjects: (B, ...)."""
    picked = values[..., samples]                         # (..., B, S)
    with np.errstate(invalid="ignore"), _quiet():
        return np.moveaxis(np.nanmean(picked, -1), -1, 0)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's empty-slice warnings: NaN marks missing subjects and pairs on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _ci(boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with _quiet():
        return np.nanpercentile(boot, CI[0], axis=0), np.nanpercentile(boot, CI[1], axis=0)


def analyze(models: Mapping[str, xr.Dataset], brain: xr.Dataset, *, outcome_kind: str = "score_norm_lower",
            n_bootstrap: int = 1000, select: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Scores, APS, bootstrap CIs and effective equivalence for every model and region.

    ``models`` maps a label to a model assembly; ``brain`` is the brain-to-brain assembly of the same benchmark.
    ``outcome_kind``: "score" (raw), "score_norm_lower" (divided by the lower ceiling; the paper's figures) or
    "score_norm_upper". Layer selection, score and APS all use the outcome.
    """
    if not models:
        raise InputError("APA needs at least one model assembly; score a model on the benchmark first")
    if not isinstance(n_bootstrap, int) or n_bootstrap < 2:
        raise InputError(f"--n-bootstrap must be a whole number >= 2 (confidence intervals need resamples), "
                         f"got {n_bootstrap!r}")
    pairs, loso = brain_scores(brain, select)
    lower, upper = lower_ceiling(pairs), upper_ceiling(loso)
    brain_out = outcome(pairs, outcome_kind, lower, upper)
    patterns = brain_patterns(brain_out)
    regions = [str(v) for v in patterns["source_region"].values]
    subjects = [str(v) for v in patterns["subject"].values]
    samples = bootstrap_subjects(len(subjects), n_bootstrap)

    bb = brain_brain_aps(patterns)                                            # (region, subject)
    bb_boot = _boot_mean(bb.values, samples)
    bb_low, bb_high = _ci(bb_boot)

    names = list(models)
    shape = (len(names), len(regions))
    fields = {k: np.full(shape, np.nan) for k in ("score_mean", "score_ci_low", "score_ci_high", "aps_mean",
                                                  "aps_ci_low", "aps_ci_high", "train_score_mean")}
    best_layers = np.full(shape, "", dtype=object)
    per_subject_score = np.full((*shape, len(subjects)), np.nan)
    per_subject_aps = np.full_like(per_subject_score, np.nan)
    model_pattern = np.full((*shape, len(regions)), np.nan)
    for mi, name in enumerate(names):
        raw = model_scores(models[name], select)
        missing = [r for r in regions if r not in set(str(v) for v in raw["region"].values)]
        if missing:
            raise InputError(f"{_name(models[name])}: no scores for target region(s) {missing}, which the "
                             "brain-to-brain assembly has; APA needs every region")
        raw = raw.sel(region=regions)
        _check_subset(raw, lower, "subject")
        raw = raw.reindex(subject=subjects)                                   # NaN for subjects the model lacks
        values = outcome(raw, outcome_kind, lower, upper)
        with _quiet():
            train_mean = values.sel(split="train").mean("subject", skipna=True)   # (layer, region)
        if bool(train_mean.isnull().all("layer").any()):
            bad = [r for r in regions if bool(train_mean.sel(region=r).isnull().all())]
            raise InputError(f"{_name(models[name])}: no finite train score for region(s) {bad}")
        best = train_mean.fillna(-np.inf).argmax("layer").values              # (region,)
        layers = [str(v) for v in raw["layer"].values]
        test = values.sel(split="test").values                                # (L, R, S)
        aps = model_brain_aps(values.sel(split="test", drop=True), patterns).values   # (L, R, S)
        idx = np.arange(len(regions))
        per_subject_score[mi] = test[best, idx]
        per_subject_aps[mi] = aps[best, idx]
        best_layers[mi] = [layers[b] for b in best]
        fields["train_score_mean"][mi] = train_mean.values[best, idx]
        with _quiet():
            model_pattern[mi] = np.nanmean(test[best], axis=-1)               # (R_src, R_tgt) pattern of best layer
            fields["score_mean"][mi] = np.nanmean(per_subject_score[mi], -1)
            fields["aps_mean"][mi] = np.nanmean(per_subject_aps[mi], -1)
        fields["score_ci_low"][mi], fields["score_ci_high"][mi] = _ci(_boot_mean(per_subject_score[mi], samples))
        fields["aps_ci_low"][mi], fields["aps_ci_high"][mi] = _ci(_boot_mean(per_subject_aps[mi], samples))

    n_subjects = (np.isfinite(per_subject_score) & np.isfinite(per_subject_aps)).sum(-1)      # (model, region)
    eligible = n_subjects >= MIN_SUBJECTS
    flags = _equivalence(fields, eligible)
    coords = {"model": names, "region": regions}
    dims = ("model", "region")
    data = {k: xr.DataArray(v, dims=dims, coords=coords) for k, v in fields.items()}
    data.update({k: xr.DataArray(v, dims=dims, coords=coords) for k, v in flags.items()})
    data["best_layer"] = xr.DataArray(best_layers.astype(str), dims=dims, coords=coords)
    data["n_subjects"] = xr.DataArray(n_subjects, dims=dims, coords=coords,
                                      attrs={"description": "subjects with a score and an APS (CIs need several)"})
    data["eligible"] = xr.DataArray(eligible, dims=dims, coords=coords,
                                    attrs={"description": f"at least {MIN_SUBJECTS} subjects: enters the best-model "
                                                          "and equivalence tests (a between-subject spread exists)"})
    data["score"] = xr.DataArray(per_subject_score, dims=(*dims, "subject"), coords={**coords, "subject": subjects})
    data["aps"] = xr.DataArray(per_subject_aps, dims=(*dims, "subject"), coords={**coords, "subject": subjects})
    data["model_pattern"] = xr.DataArray(model_pattern, dims=(*dims, "target_region"),
                                         coords={**coords, "target_region": regions})
    with _quiet():
        brain_mean = np.nanmean(patterns.values, axis=(0, 2))                 # mean over pairs: (R_src, R_tgt)
    data["brain_pattern"] = xr.DataArray(brain_mean, dims=("region", "target_region"),
                                         coords={"region": regions, "target_region": regions})
    data["brain_aps"] = bb
    with _quiet():
        data["brain_aps_mean"] = xr.DataArray(np.nanmean(bb.values, -1), dims="region", coords={"region": regions})
    data["brain_aps_ci_low"] = xr.DataArray(bb_low, dims="region", coords={"region": regions})
    data["brain_aps_ci_high"] = xr.DataArray(bb_high, dims="region", coords={"region": regions})
    data["lower_ceiling"] = lower
    if upper is not None:
        data["upper_ceiling"] = upper
    attrs = {"outcome": outcome_kind, "n_bootstrap": n_bootstrap, "ci": f"{CI[0]}-{CI[1]} percentiles",
             "benchmark": str(brain.attrs.get("benchmark", "")),
             "method": "Höfling et al. 2026: best layer per (model, region) by subject-mean train outcome; test "
                       "values; bootstrap over subjects (resample b = default_rng(b)); equivalent = mean >= lower "
                       "CI bound of the best model (score and APS separately); models with fewer than "
                       f"{MIN_SUBJECTS} subjects are listed but not tested"}
    return xr.Dataset(data, attrs=attrs)


def _equivalence(fields: Mapping[str, np.ndarray], eligible: np.ndarray) -> dict[str, np.ndarray]:
    """Best model per region and the models whose mean reaches the best one's lower CI bound.

    Only ``eligible`` (model, region) cells take part: with fewer than ``MIN_SUBJECTS`` subjects the bootstrap CI
    collapses onto the mean, so such a model could neither be compared fairly nor set a fair threshold.
    """
    out = {}
    for key in ("score", "aps"):
        mean, low = fields[f"{key}_mean"], fields[f"{key}_ci_low"]
        usable = np.isfinite(mean) & eligible
        filled = np.where(usable, mean, -np.inf)
        best = filled.argmax(0)                                   # (region,)
        cols = np.arange(mean.shape[1])
        is_best = np.zeros_like(mean, dtype=bool)
        is_best[best, cols] = usable[best, cols]
        threshold = np.where(usable[best, cols], low[best, cols], np.nan)
        out[f"is_best_{key}"] = is_best
        with np.errstate(invalid="ignore"):
            out[f"equivalent_{key}"] = usable & (mean >= threshold[None, :])
    out["equivalent_both"] = out["equivalent_score"] & out["equivalent_aps"]
    return out


# --- headline numbers for benchmarks and importers ---------------------------------------------------------
def headline(raw: xr.DataArray, lower: xr.DataArray | None, *, n_bootstrap: int = 1000) -> dict[str, Any]:
    """Headline of a model assembly: per region the best layer on train (subject-mean), test score / lower ceiling.

    Returns score (mean over regions and subjects), its bootstrap-over-subjects SD and CI, the mean ceiling, and the
    best layer per region. Without a ceiling the raw score is reported.
    """
    scores = _with_split(raw).transpose("layer", "region", "subject", "split")
    if lower is not None:
        scores = outcome(scores, "score_norm_lower", lower, None)
        with _quiet():
            ceiling = float(np.nanmean(lower.sel(split="test", region=scores["region"],
                                                 subject=scores["subject"]).values))
    else:
        ceiling = math.nan
    with _quiet():
        train = scores.sel(split="train").mean("subject", skipna=True).fillna(-np.inf)
    best = train.argmax("layer").values
    test = scores.sel(split="test").values[best, np.arange(len(best))]          # (region, subject)
    with _quiet():
        per_subject = np.nanmean(test, 0)                                       # (subject,)
    samples = bootstrap_subjects(len(per_subject), n_bootstrap)
    boot = _boot_mean(per_subject, samples) if n_bootstrap else np.array([np.nan])
    with _quiet():
        return {"score": float(np.nanmean(per_subject)),
                "score_error": float(np.nanstd(boot, ddof=1)) if n_bootstrap > 1 else math.nan,
                "ci_low": float(np.nanpercentile(boot, CI[0])), "ci_high": float(np.nanpercentile(boot, CI[1])),
                "ceiling": ceiling,
                "best_layer": {str(r): str(scores["layer"].values[b]) for r, b in zip(scores["region"].values, best)}}


# --- loading from the registry -----------------------------------------------------------------------------
def load_from_registry(registry: Any, benchmark: str, models: Iterable[str] | None = None,
                       variant: str = "default") -> tuple[dict[str, xr.Dataset], xr.Dataset]:
    """The brain-to-brain assembly and the model assemblies (default: every stored model) of ``benchmark``, all in
    one registry ``variant`` (the same benchmark options on both sides)."""
    brain = registry.get(BRAIN_MODEL, benchmark, variant=variant).load()
    if models is None:
        models = sorted({r.model for r in registry.scores(benchmark=benchmark, variant=variant)
                         if r.state == "scored" and r.model != BRAIN_MODEL})
    loaded = {m: registry.get(m, benchmark, variant=variant).load() for m in models}
    return loaded, brain


# --- plots -------------------------------------------------------------------------------------------------
def plot_alignment_patterns(result: xr.Dataset, path: str | os.PathLike, models: Sequence[str] | None = None) -> None:
    """Heatmaps: brain mean pattern (row r = region r as predictor) next to each model's best-layer patterns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(models or result["model"].values)[:7]
    regions = [str(r) for r in result["region"].values]
    panels = [("brain (mean over pairs)", result["brain_pattern"].values)]
    panels += [(f"{m} ({n_label(result, m)})\n(best layer per row region)", result["model_pattern"].sel(model=m).values)
               for m in models]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.8, 4.0), squeeze=False,
                             constrained_layout=True)
    for ax, (title, matrix) in zip(axes[0], panels):
        finite = matrix[np.isfinite(matrix)]
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
        image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(finite.min()) if finite.size else 0.0),
                          vmax=vmax)
        ax.set_xticks(range(len(regions)), regions, rotation=90, fontsize=6)
        ax.set_yticks(range(len(regions)), regions, fontsize=6)
        ax.set_xlabel("target region", fontsize=8)
        ax.set_title(title, fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.7)
    axes[0][0].set_ylabel("predictor region (brain) / region the layer was chosen for (model)", fontsize=7)
    fig.suptitle(f"alignment patterns on {result.attrs.get('benchmark', '')} ({result.attrs.get('outcome')})",
                 fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_score_vs_aps(result: xr.Dataset, path: str | os.PathLike) -> None:
    """Per region: each model's score against its APS with 95 % CIs; the brain-brain APS as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regions = [str(r) for r in result["region"].values]
    models = [str(m) for m in result["model"].values]
    cols = min(5, len(regions))
    rows = math.ceil(len(regions) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows), squeeze=False, constrained_layout=True)
    colors = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    for k, region in enumerate(regions):
        ax = axes[k // cols][k % cols]
        lo, hi = float(result["brain_aps_ci_low"].sel(region=region)), float(result["brain_aps_ci_high"].sel(region=region))
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        ax.axhline(float(result["brain_aps_mean"].sel(region=region)), color="0.4", lw=0.8, zorder=1)
        for i, model in enumerate(models):
            sel = result.sel(model=model, region=region)
            x, y = float(sel["score_mean"]), float(sel["aps_mean"])
            xerr = [[x - float(sel["score_ci_low"])], [float(sel["score_ci_high"]) - x]]
            yerr = [[y - float(sel["aps_ci_low"])], [float(sel["aps_ci_high"]) - y]]
            marker = "*" if bool(sel["equivalent_both"]) else "o"
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=marker, color=colors(i % colors.N), ms=6 if marker == "*" else 4,
                        lw=0.8, label=f"{model} ({n_label(result, model)})" if k == 0 else None, zorder=2)
        ax.set_title(region, fontsize=8)
        ax.tick_params(labelsize=6)
    for k in range(len(regions), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.supxlabel(f"{result.attrs.get('outcome')} (test, best layer)", fontsize=8)
    fig.supylabel("alignment-pattern similarity (grey: brain-brain 95% CI)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=6, loc="lower right")
    fig.savefig(path, dpi=130)
    plt.close(fig)


def n_label(result: xr.Dataset, model: str) -> str:
    """``n=6`` (or ``n=1-6`` when it varies over regions), with a mark when the model is not tested."""
    n = result["n_subjects"].sel(model=model).values
    text = f"n={int(n.min())}" if n.min() == n.max() else f"n={int(n.min())}-{int(n.max())}"
    return text if bool(result["eligible"].sel(model=model).all()) else f"{text}, not tested"


def summary_rows(result: xr.Dataset) -> list[dict[str, Any]]:
    """One row per (region, model) for printing or JSON."""
    rows = []
    for region in result["region"].values:
        for model in result["model"].values:
            sel = result.sel(model=model, region=region)
            rows.append({"region": str(region), "model": str(model), "best_layer": str(sel["best_layer"].values),
                         "score": float(sel["score_mean"]), "score_ci": [float(sel["score_ci_low"]),
                                                                         float(sel["score_ci_high"])],
                         "aps": float(sel["aps_mean"]), "aps_ci": [float(sel["aps_ci_low"]),
                                                                   float(sel["aps_ci_high"])],
                         "brain_aps": float(result["brain_aps_mean"].sel(region=region)),
                         "n_subjects": int(sel["n_subjects"]), "eligible": bool(sel["eligible"]),
                         "equivalent_score": bool(sel["equivalent_score"]),
                         "equivalent_aps": bool(sel["equivalent_aps"]),
                         "equivalent_both": bool(sel["equivalent_both"])})
    return rows


# --- building brain-to-brain assemblies (benchmarks and importers share this) ------------------------------
def brain_to_brain_assembly(raw: xr.DataArray, loso: xr.DataArray | None, attrs: Mapping[str, Any], *,
                            n_bootstrap: int = 1000, select: Mapping[str, Any] | None = None,
                            **variables: Any) -> xr.Dataset:
    """A registry-ready brain-to-brain assembly: ``raw`` pairwise scores (+ ``loso``), ceilings as variables.

    ``raw`` may keep dimensions beyond the pairwise ones (e.g. ``sigma``), exactly like the benchmark's model scores,
    so that ``apa --select`` picks the same value on both sides; ``select`` then names the value the headline uses.
    The stored ``lower_ceiling``/``upper_ceiling`` keep those dimensions.

    Headline: ``score`` = mean lower ceiling (test split) over regions and subjects, its bootstrap-over-subjects SD as
    ``score_error``; ``ceiling`` = mean upper (LOSO) ceiling on the test split, NaN without LOSO scores.
    """
    from . import assembly

    what = "brain-to-brain raw"
    pairs = _select(raw, BRAIN_DIMS, select, what)                     # validates dims and the headline selection
    lower = lower_ceiling(pairs)
    upper = upper_ceiling(_select(loso, LOSO_DIMS, select, "brain-to-brain loso")) if loso is not None else None
    stored_lower = lower_ceiling(_with_split(raw)) if select else lower
    stored_upper = upper_ceiling(_with_split(loso)) if select and loso is not None else upper
    with _quiet():
        per_subject = np.nanmean(lower.sel(split="test").values, 0)
        boot = _boot_mean(per_subject, bootstrap_subjects(len(per_subject), n_bootstrap))
        score = float(np.nanmean(per_subject))
        error = float(np.nanstd(boot, ddof=1)) if n_bootstrap > 1 else math.nan
        ceiling = float(np.nanmean(upper.sel(split="test").values)) if upper is not None else math.nan
    extra: dict[str, Any] = {"lower_ceiling": stored_lower}
    if loso is not None:
        extra["loso"] = loso
        extra["upper_ceiling"] = stored_upper
    extra.update(variables)
    attrs = {"ceiling_method": ("upper: leave-one-subject-out mean predictor, same region (test split, mean over "
                                "regions and subjects)" if upper is not None else
                                "none: no leave-one-subject-out scores were given"),
             "error_method": f"bootstrap over subjects ({n_bootstrap} resamples): SD of the mean lower ceiling",
             "score_definition": "mean over regions and subjects of the lower ceiling (mean over partner subjects "
                                 "of the same-region pairwise score), test split"
                                 + (f", at {', '.join(f'{k}={v}' for k, v in select.items())}" if select else ""),
             **dict(attrs), "model": BRAIN_MODEL}
    return assembly.make(score=score, score_error=error, ceiling=ceiling, raw=raw, attrs=attrs, **extra)
