"""BenchmarkSpec.plot: `cortexbench show --plot` draws a benchmark's own plot when it declares one."""
import numpy as np
import pytest
import xarray as xr

from cortexbench import plots
from cortexbench.errors import InputError, UnknownIdentifierError
from cortexbench.interfaces import BenchmarkSpec

CALLS = []


def record_plot(ds, path):
    """Stands in for a benchmark plugin's plot function."""
    CALLS.append((ds.attrs["benchmark"], str(path)))


class _Plugins:
    def __init__(self, **plots_by_id):
        self.specs = {k: BenchmarkSpec(identifier=k, factory=dict, description="", version="1", citation="", plot=v)
                      for k, v in plots_by_id.items()}

    def benchmark_spec(self, identifier):
        if identifier not in self.specs:
            raise UnknownIdentifierError("benchmark", identifier, self.specs)
        return self.specs[identifier]


def _assembly(benchmark):
    raw = xr.DataArray(np.arange(6.0).reshape(3, 2), dims=("layer", "subject"),
                       coords={"layer": ["a", "b", "c"], "subject": ["s1", "s2"]})
    return xr.Dataset({"raw": raw, "score": 1.0, "score_error": 0.1, "ceiling": np.nan},
                      attrs={"model": "m", "benchmark": benchmark})


def test_declared_plots_are_used_lazily_and_others_get_the_generic_plot(tmp_path):
    plugins = _Plugins(own=f"{__name__}:record_plot", direct=record_plot, plain=None,
                       broken="cortexbench.no_such_module:plot")
    CALLS.clear()
    plots.plot_stored(_assembly("own"), tmp_path / "own.png", plugins)
    plots.plot_stored(_assembly("direct"), tmp_path / "direct.png", plugins)
    assert CALLS == [("own", str(tmp_path / "own.png")), ("direct", str(tmp_path / "direct.png"))]
    for benchmark in ("plain", "uninstalled"):          # no declared plot / benchmark gone: the generic plot
        plots.plot_stored(_assembly(benchmark), tmp_path / f"{benchmark}.png", plugins)
        assert (tmp_path / f"{benchmark}.png").stat().st_size > 1000
    assert len(CALLS) == 2
    with pytest.raises(InputError, match="no_such_module"):
        plots.plot_stored(_assembly("broken"), tmp_path / "broken.png", plugins)
