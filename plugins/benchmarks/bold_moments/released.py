"""Import the released scoresheets of Höfling et al. (2026) into the score registry.

Layout of the release (``bethgelab/alignment-pattern-analysis``, ``precomputed_results/``)::

    <kind>/<run hash>/config.yaml
    <kind>/<run hash>/scoresheets/scores_{rsa,linear_predictivity}_sub-XX.csv

with CSV columns ``model,layer,roi,split,subject,n_features_1_model,n_features_2_brain,metric,score`` (linear
predictivity tables carry a few more columns, ignored here). A run is

* pairwise brain-to-brain when its config says ``fmri.intersubject.mode: pairwise`` (or ``model`` is a subject id):
  ``model`` = source subject, ``layer`` = source region, ``roi`` = target region, ``subject`` = target subject;
* leave-one-subject-out when ``feature_extraction.model`` is ``all-other-subjects``;
* a model run otherwise (``layer`` = model layer).

Every table of one metric becomes one assembly per model plus one brain-to-brain assembly, stored under the
benchmark ``bmd-released.<metric>`` (so released numbers never mix with scores computed here). V7 is listed twice
in the authors' ROI lists, so exact duplicate rows are dropped; conflicting duplicates are an error. Only the 19
analysis regions are kept unless ``regions`` says otherwise.
"""
from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from cortexbench import alignment_patterns as apa
from cortexbench import assembly
from cortexbench.data import sha256_file
from cortexbench.errors import DataError, InputError

from .protocol import REGIONS

BENCHMARK_PREFIX = "bmd-released"
VERSION = "hoefling2026-release"
METRICS = {"rsa": "rsa", "linear_predictivity": "linear-predictivity"}
_SUBJECT = re.compile(r"^sub-\d+$")
_REQUIRED = ("model", "layer", "roi", "split", "subject", "metric", "score")


@dataclass
class Run:
    """One released run: its folder, kind ("pairwise", "loso", "model") and scoresheet files."""

    path: Path
    kind: str
    config: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def benchmark_id(metric: str) -> str:
    if metric not in METRICS:
        raise InputError(f"unknown released metric {metric!r}; expected one of {sorted(METRICS)}")
    return f"{BENCHMARK_PREFIX}.{METRICS[metric]}"


def find_runs(root: str | Path) -> list[Run]:
    """Every run folder (a ``config.yaml`` beside a ``scoresheets/`` folder) under ``root``."""
    import yaml

    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder; point import-apa at the release's precomputed_results/ folder")
    runs = []
    for config_path in sorted(root.rglob("config.yaml")):
        sheets = config_path.parent / "scoresheets"
        if not sheets.is_dir():
            continue
        try:
            config = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as err:
            raise DataError(f"{config_path}: not valid YAML ({err})") from None
        runs.append(Run(config_path.parent, _kind(config, config_path), config, sorted(sheets.glob("scores_*.csv"))))
    if not runs:
        raise InputError(f"{root}: no run folders found (expected <kind>/<hash>/config.yaml with a scoresheets/ "
                         "folder beside it, as in the release's precomputed_results/)")
    return runs


def _kind(config: dict[str, Any], path: Path) -> str:
    fmri = config.get("fmri") or {}
    mode = ((fmri.get("intersubject") or {}).get("mode") or "")
    model = str((config.get("feature_extraction") or {}).get("model", ""))
    if mode == "pairwise" or _SUBJECT.match(model):
        return "pairwise"
    if mode == "leave-one-out-mean" or model == "all-other-subjects":
        return "loso"
    if not model:
        raise DataError(f"{path}: cannot tell the run kind (no fmri.intersubject.mode and no feature_extraction.model)")
    return "model"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected the released scoresheet layout "
                            f"{','.join(_REQUIRED)}")
        return list(reader)


def _collect(runs: Iterable[Run], kind: str, metric: str, regions: Sequence[str]
             ) -> dict[str, dict[tuple[str, ...], float]]:
    """``{model: {(layer, roi, subject, split): score}}`` for one kind and metric, duplicates checked."""
    out: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
    wanted = set(regions)
    for run in runs:
        if run.kind != kind:
            continue
        for path in run.files:
            for row in read_rows(path):
                if row["metric"] != metric or row["roi"] not in wanted:
                    continue
                if kind != "model" and row["layer"] not in wanted:
                    continue
                key = (row["layer"], row["roi"], row["subject"], row["split"])
                try:
                    score = float(row["score"]) if row["score"] not in ("", "nan", "NaN") else np.nan
                except ValueError:
                    raise DataError(f"{path}: score {row['score']!r} is not a number") from None
                table = out[row["model"]]
                if key in table and not (table[key] == score or (np.isnan(table[key]) and np.isnan(score))):
                    raise DataError(f"{path}: conflicting duplicate rows for {row['model']} {key}: "
                                    f"{table[key]} vs {score}")
                table[key] = score
    return out


def _array(table: dict[tuple[str, ...], float], dims: Sequence[str], coords: dict[str, list[str]],
           index: Any) -> np.ndarray:
    values = np.full(tuple(len(coords[d]) for d in dims), np.nan)
    positions = {d: {v: i for i, v in enumerate(coords[d])} for d in dims}
    for key, score in table.items():
        values[tuple(positions[d][v] for d, v in zip(dims, index(key)))] = score
    return values


def build(root: str | Path, metric: str = "rsa", regions: Sequence[str] = REGIONS,
          n_bootstrap: int = 1000) -> tuple[xr.Dataset | None, dict[str, xr.Dataset]]:
    """The brain-to-brain assembly (None without pairwise runs) and one assembly per released model."""
    runs = find_runs(root)
    regions = list(regions)
    bench = benchmark_id(metric)
    pairwise = _collect(runs, "pairwise", metric, regions)
    loso = _collect(runs, "loso", metric, regions)
    models = _collect(runs, "model", metric, regions)
    subjects = sorted({k[2] for t in [*pairwise.values(), *loso.values(), *models.values()] for k in t})
    splits = ["train", "test"]
    common = {"benchmark": bench, "benchmark_version": VERSION, "metric": metric, "metric_version": "released",
              "source": "Höfling et al. 2026, bethgelab/alignment-pattern-analysis precomputed_results",
              "imported_from": str(Path(root).resolve()), "regions": json.dumps(regions)}
    brain = None
    if pairwise:
        sources = sorted(pairwise)
        coords = {"source_subject": sources, "source_region": regions, "region": regions, "subject": subjects,
                  "split": splits}
        merged: dict[tuple[str, ...], float] = {}
        for source, table in pairwise.items():
            merged.update({(source, *k): v for k, v in table.items()})
        dims = ("source_subject", "source_region", "region", "subject", "split")
        raw = xr.DataArray(_array(merged, dims, coords, lambda k: k), dims=dims, coords=coords,
                           attrs={"description": f"released pairwise {metric} scores: source subject's region "
                                                 "predicting target subject's region"})
        loso_da = None
        if loso:
            table = next(iter(loso.values()))
            ldims = ("source_region", "region", "subject", "split")
            lcoords = {d: coords[d] for d in ldims}
            loso_da = xr.DataArray(_array(table, ldims, lcoords, lambda k: k), dims=ldims, coords=lcoords,
                                   attrs={"description": "released leave-one-subject-out mean predictor scores"})
        pairs = [(s, t) for s in sources for t in subjects
                 if np.isfinite(raw.sel(source_subject=s, subject=t, split="test")).any()]
        brain = apa.brain_to_brain_assembly(raw, loso_da, {**common, "n_pairs": len(pairs),
                                                           "pairs": json.dumps(pairs)}, n_bootstrap=n_bootstrap)
    lower = apa.lower_ceiling(apa.brain_scores(brain)[0]) if brain is not None else None
    out = {}
    for name, table in models.items():
        layers = _layer_order(table)
        coords = {"layer": layers, "region": regions, "subject": subjects, "split": splits}
        dims = ("layer", "region", "subject", "split")
        raw = xr.DataArray(_array(table, dims, coords, lambda k: k), dims=dims, coords=coords,
                           attrs={"description": f"released {metric} scores of model layers for target regions"})
        head = apa.headline(raw, lower, n_bootstrap=n_bootstrap)
        attrs = {**common, "model": name,
                 "ceiling_method": ("lower: mean over partner subjects of the same-region pairwise score (released "
                                    "pairwise runs), test split; score = test score / lower ceiling"
                                    if lower is not None else "none: no pairwise runs were imported"),
                 "error_method": f"bootstrap over subjects ({n_bootstrap} resamples): SD of the headline",
                 "selection_method": "best layer per region by the subject-mean train score (ceiled when a ceiling "
                                     "exists); headline = mean over regions and subjects of the test score",
                 "best_layer": json.dumps(head["best_layer"])}
        out[name] = assembly.make(score=head["score"], score_error=head["score_error"], ceiling=head["ceiling"],
                                  raw=raw, attrs=attrs, ci_low=head["ci_low"], ci_high=head["ci_high"])
    return brain, out


def _layer_order(table: dict[tuple[str, ...], float]) -> list[str]:
    """Layers in first-seen order (the release lists them in forward order)."""
    seen: dict[str, None] = {}
    for key in table:
        seen.setdefault(key[0], None)
    return list(seen)


def import_release(root: str | Path, registry: Any = None, metrics: Sequence[str] | None = None,
                   regions: Sequence[str] = REGIONS, n_bootstrap: int = 1000) -> list[tuple[str, str, Path]]:
    """Store every metric's brain-to-brain and model assemblies; returns ``(model, benchmark, path)`` rows."""
    from cortexbench import provenance
    from cortexbench.registry import Registry

    registry = registry if isinstance(registry, Registry) else Registry(registry)
    runs = find_runs(root)
    present = sorted({row_metric for r in runs for p in r.files for row_metric in _metrics_in(p)})
    metrics = list(metrics) if metrics else [m for m in present if m in METRICS]
    if not metrics:
        raise InputError(f"{root}: no scoresheets with a known metric ({sorted(METRICS)}) found")
    stored = []
    for metric in metrics:
        brain, models = build(root, metric, regions, n_bootstrap)
        for ds in ([brain] if brain is not None else []) + list(models.values()):
            facts = {"model": ds.attrs["model"], "benchmark": ds.attrs["benchmark"],
                     "benchmark_version": VERSION, "importer": __name__,
                     "files": {str(p.relative_to(root)): sha256_file(p) for r in runs for p in r.files
                               if _metric_of(p) == metric}}
            result = registry.write(ds, provenance.collect(**facts))
            stored.append((ds.attrs["model"], ds.attrs["benchmark"], result.path))
    return stored


def _metric_of(path: Path) -> str:
    match = re.match(r"scores_(.+)_sub-\d+\.csv$", path.name)
    return match.group(1) if match else ""


def _metrics_in(path: Path) -> list[str]:
    metric = _metric_of(path)
    return [metric] if metric else []
