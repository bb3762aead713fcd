"""The registered ridge metric: train/test split from a coordinate, target items batched with one alpha each."""
import numpy as np
import pytest
import xarray as xr

from cortexbench.errors import InputError
from cortexbench.interfaces import Metric
from cortexbench.plugin_manager import PluginManager
from cortexbench.plugins.metrics.ridge import functional as R


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    n = 70
    latent = rng.normal(size=(n, 4))
    split = np.array(["train"] * 55 + ["test"] * 15)
    ids = [f"v{i}" for i in range(n)]
    source = xr.DataArray(np.stack([latent @ rng.normal(size=(4, 12)) + s * rng.normal(size=(n, 12))
                                    for s in (0.3, 3.0)]),
                          dims=("layer", "stimulus", "feature"),
                          coords={"layer": ["good", "bad"], "stimulus": ids, "split": ("stimulus", split)})
    target = xr.DataArray(np.stack([latent @ rng.normal(size=(4, 5)) + rng.normal(size=(n, 5)) * s
                                    for s in (0.5, 1.5, 3.0)]),
                          dims=("region", "stimulus", "neuroid"),
                          coords={"region": ["V1", "V2", "MT"], "stimulus": ids, "split": ("stimulus", split)})
    return source, target


def test_registered_metric_splits_and_batches(arrays):
    source, target = arrays
    metric = PluginManager().create_metric("ridge", random_state=1)
    assert isinstance(metric, Metric) and metric.identifier == "ridge"
    out = metric(source, target)
    assert out.dims == ("layer", "region", "split") and list(out["split"].values) == ["train", "test"]
    train = source["split"].values == "train"
    for layer in ("good", "bad"):
        for region in ("V1", "MT"):
            x, y = source.sel(layer=layer).values, target.sel(region=region).values
            alone = R.ridge_cv(x[train], y[train], x[~train], y[~train], random_state=1)
            assert float(out.sel(layer=layer, region=region, split="train")) == pytest.approx(alone.train_r2.mean(),
                                                                                             abs=1e-12)
            assert float(out.sel(layer=layer, region=region, split="test")) == pytest.approx(alone.test_r2.mean(),
                                                                                            abs=1e-12)
    # the planted structure: the low-noise layer predicts better, and so does the low-noise region
    assert (out.sel(layer="good") > out.sel(layer="bad")).all()
    assert float(out.sel(layer="good", region="V1", split="test")) > float(out.sel(layer="good", region="MT",
                                                                                  split="test"))


def test_per_neuroid_pearson_without_split(arrays):
    source, target = arrays
    from cortexbench.plugins.metrics.ridge.metric import RidgeEncoding

    plain_s, plain_t = source.drop_vars("split"), target.drop_vars("split").isel(region=0)
    out = RidgeEncoding(score="r", per_neuroid=True)(plain_s, plain_t)
    assert out.dims == ("layer", "split", "neuroid") and list(out["split"].values) == ["train"]
    alone = R.ridge_cv(plain_s.values[0], plain_t.values)
    np.testing.assert_allclose(out.sel(layer="good", split="train").values, alone.train_r, atol=1e-12)


def test_ridge_metric_errors(arrays):
    source, target = arrays
    from cortexbench.plugins.metrics.ridge.metric import RidgeEncoding

    with pytest.raises(InputError, match="same 'split'"):
        RidgeEncoding()(source, target.drop_vars("split"))
    with pytest.raises(InputError, match="per_neuroid"):
        RidgeEncoding(per_neuroid=True)(source, target)
    with pytest.raises(InputError, match="score"):
        RidgeEncoding(score="mse")
