"""The registered CKA metrics: leading dimensions batched and kept, values equal to single-pair CKA, clear errors."""
import numpy as np
import pytest
import xarray as xr

from cortexbench.errors import InputError
from cortexbench.interfaces import Metric
from cortexbench.plugin_manager import PluginManager
from cortexbench.plugins.metrics.cka import functional as F


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(12)]
    latent = rng.normal(size=(12, 2))
    source = xr.DataArray(np.stack([latent @ rng.normal(size=(2, 6)) + rng.normal(size=(12, 6)) for _ in range(3)]),
                          dims=("layer", "stimulus", "feature"),
                          coords={"layer": ["conv1", "conv2", "fc"], "stimulus": ids})
    target = xr.DataArray(np.stack([np.stack([latent @ rng.normal(size=(2, 4)) + rng.normal(size=(12, 4))
                                              for _ in range(2)]) for _ in range(2)]),
                          dims=("subject", "region", "stimulus", "neuroid"),
                          coords={"subject": ["s1", "s2"], "region": ["V1", "IT"], "stimulus": ids})
    return source, target


def test_registered_metrics_honour_the_protocol(arrays):
    manager = PluginManager()
    source, target = arrays
    linear = manager.create_metric("cka")
    rbf = manager.create_metric("rbf-cka", sigmas=[2.0, 5.0])
    assert isinstance(linear, Metric) and isinstance(rbf, Metric)
    assert (linear.identifier, rbf.identifier) == ("cka", "rbf-cka")
    out = linear(source, target)
    assert out.dims == ("layer", "subject", "region") and out.shape == (3, 2, 2)
    assert list(out["region"].values) == ["V1", "IT"]
    expected = F.linear_cka(source.sel(layer="fc").values, target.sel(subject="s2", region="IT").values)
    assert float(out.sel(layer="fc", subject="s2", region="IT")) == pytest.approx(expected, abs=1e-12)
    out = rbf(source, target)
    assert out.dims == ("layer", "subject", "region", "sigma") and list(out["sigma"].values) == [2.0, 5.0]
    expected = F.rbf_cka(source.sel(layer="conv1").values, target.sel(subject="s1", region="V1").values,
                         sigma=5.0, zscore=True)
    assert float(out.sel(layer="conv1", subject="s1", region="V1", sigma=5.0)) == pytest.approx(expected, abs=1e-12)


def test_default_rbf_grid_and_median_variant(arrays):
    source, target = arrays
    from cortexbench.plugins.metrics.cka.metric import CKA

    out = CKA("rbf")(source.isel(layer=0), target.isel(subject=0, region=0))
    assert out.dims == ("sigma",) and list(out["sigma"].values) == list(map(float, range(12, 101, 8)))
    out = CKA("rbf", thresholds=[0.5], debiased=True)(source.isel(layer=0), target.isel(subject=0))
    expected = F.rbf_cka(source.values[0], target.values[0, 1], threshold=0.5, debiased=True)
    assert float(out.sel(region="IT", threshold=0.5)) == pytest.approx(expected, abs=1e-12)


def test_metric_errors(arrays):
    source, target = arrays
    from cortexbench.plugins.metrics.cka.metric import CKA

    with pytest.raises(InputError, match="permutation"):
        CKA()(source, target.assign_coords(stimulus=list(target["stimulus"].values[::-1])))
    with pytest.raises(InputError, match="at least 4"):
        CKA(debiased=True)(source.isel(stimulus=slice(0, 3)), target.isel(stimulus=slice(0, 3)))
    with pytest.raises(InputError, match="share the leading"):
        CKA()(source.rename(layer="subject").isel(subject=[0, 1]).assign_coords(subject=["s1", "s2"]), target)
    with pytest.raises(InputError, match="trailing dims"):
        CKA()(source.rename(feature="unit"), target)
    with pytest.raises(InputError, match="rbf-cka only"):
        CKA("linear", sigmas=[1.0])
