"""Score assemblies: plain ``xarray.Dataset`` objects checked by a small schema (no DataArray subclasses).

Every assembly holds

* ``score``: the headline, ceiled score (0-d);
* ``score_error``: its error (0-d), computed as ``attrs['error_method']`` says;
* ``ceiling``: the noise ceiling the score was divided by (0-d; NaN with an explanation when there is none);
* ``raw``: the un-ceiled scores along named dimensions (``layer``, ``region``, ``subject``, ``split``, ...);

plus any benchmark-specific variables, and attributes naming the model, benchmark, metric and their versions.
Keeping the full ``raw`` array (not only the best layer) is what lets later analyses run on stored scores.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from .errors import InputError

REQUIRED_VARIABLES = ("score", "score_error", "ceiling", "raw")
SCALAR_VARIABLES = ("score", "score_error", "ceiling")
REQUIRED_ATTRS = ("model", "benchmark", "benchmark_version", "metric", "metric_version",
                  "ceiling_method", "error_method")


def make(*, score: float, score_error: float, ceiling: float, raw: xr.DataArray, attrs: Mapping[str, Any],
         **variables: Any) -> xr.Dataset:
    """Build a score assembly; extra keyword arguments become further data variables."""
    data = {
        "score": xr.DataArray(float(score), attrs={"description": "ceiled score"}),
        "score_error": xr.DataArray(float(score_error), attrs={"description": "error of the ceiled score"}),
        "ceiling": xr.DataArray(float(ceiling), attrs={"description": "noise ceiling"}),
        "raw": raw,
    }
    for name, value in variables.items():
        data[name] = value if isinstance(value, xr.DataArray) else xr.DataArray(value)
    dataset = xr.Dataset(data, attrs={k: _attr(v) for k, v in attrs.items()})
    return validate(dataset)


def validate(dataset: xr.Dataset) -> xr.Dataset:
    """Check the schema; raise :class:`InputError` saying exactly what is missing or malformed."""
    if not isinstance(dataset, xr.Dataset):
        raise InputError(f"a benchmark must return an xarray.Dataset, got {type(dataset).__name__}")
    problems = [f"missing variable {name!r}" for name in REQUIRED_VARIABLES if name not in dataset]
    problems += [f"missing attribute {name!r}" for name in REQUIRED_ATTRS if name not in dataset.attrs]
    for name in SCALAR_VARIABLES:
        if name in dataset and dataset[name].ndim != 0:
            problems.append(f"{name!r} must be 0-dimensional, has dims {dataset[name].dims}")
    if "raw" in dataset and dataset["raw"].ndim == 0:
        problems.append("'raw' must keep its dimensions (layer, region, subject, ...), not a single number")
    if "score" in dataset and dataset["score"].ndim == 0 and not math.isfinite(float(dataset["score"])):
        problems.append(f"'score' must be finite, is {float(dataset['score'])}")
    if "raw" in dataset and any(str(d) in ("", "dim_0") for d in dataset["raw"].dims):
        problems.append(f"'raw' has unnamed dimensions {dataset['raw'].dims}")
    for key, value in dataset.attrs.items():
        if not isinstance(value, (str, int, float, np.integer, np.floating)):
            problems.append(f"attribute {key!r} has type {type(value).__name__}; use str or a number "
                            "(store structures as JSON strings)")
    if problems:
        name = dataset.attrs.get("benchmark", "<unknown benchmark>")
        raise InputError(f"invalid score assembly from {name}: " + "; ".join(problems))
    return dataset


def _attr(value: Any) -> Any:
    """netCDF attributes hold strings and numbers only; structures become JSON."""
    if isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return value
    if isinstance(value, bool):
        return int(value)
    return json.dumps(value, sort_keys=True, default=str)


def headline(dataset: xr.Dataset) -> dict[str, float]:
    """The numbers people quote: score, error, ceiling (and the CI when the benchmark stored one)."""
    out = {name: float(dataset[name]) for name in SCALAR_VARIABLES}
    for name in ("ci_low", "ci_high"):
        if name in dataset:
            out[name] = float(dataset[name])
    return out
