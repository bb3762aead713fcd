"""Score assemblies are plain xarray Datasets; the schema check says exactly what is wrong."""
import numpy as np
import pytest
import xarray as xr

from cortexbench import assembly
from cortexbench.errors import InputError

ATTRS = {"model": "m", "benchmark": "b", "benchmark_version": "1", "metric": "rsa", "metric_version": "1",
         "ceiling_method": "c", "error_method": "e"}
RAW = xr.DataArray(np.ones((2, 3)), dims=("layer", "subject"))


def test_make_builds_a_plain_dataset_with_json_attributes():
    ds = assembly.make(score=0.5, score_error=0.1, ceiling=0.8, raw=RAW, attrs={**ATTRS, "grid": [12, 36]},
                       ci_low=0.3, ci_high=0.7)
    assert type(ds) is xr.Dataset and type(ds["raw"]) is xr.DataArray        # no subclasses
    assert ds.attrs["grid"] == "[12, 36]"
    assert assembly.headline(ds) == {"score": 0.5, "score_error": 0.1, "ceiling": 0.8, "ci_low": 0.3, "ci_high": 0.7}


@pytest.mark.parametrize("breakage, message", [
    (lambda ds: ds.drop_vars("score_error"), "missing variable 'score_error'"),
    (lambda ds: ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs({}), "missing attribute"),
    (lambda ds: ds.assign(score=xr.DataArray([0.1, 0.2], dims="x")), "'score' must be 0-dimensional"),
    (lambda ds: ds.assign(score=np.nan), "'score' must be finite"),
    (lambda ds: ds.assign(raw=xr.DataArray(1.0)), "must keep its dimensions"),
])
def test_validation_names_the_problem(breakage, message):
    ds = assembly.make(score=0.5, score_error=0.1, ceiling=0.8, raw=RAW, attrs=ATTRS)
    broken = breakage(ds)
    if message == "missing attribute":
        broken.attrs.clear()
    with pytest.raises(InputError, match=message):
        assembly.validate(broken)


def test_a_missing_ceiling_is_allowed_when_explained():
    ds = assembly.make(score=0.5, score_error=0.1, ceiling=float("nan"), raw=RAW,
                       attrs={**ATTRS, "ceiling_method": "none: single RDM"})
    assert np.isnan(float(ds["ceiling"]))
