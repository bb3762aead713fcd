"""The registered RSA metric: features -> RDMs -> RDM comparison, batched over leading dimensions."""
from __future__ import annotations

import numpy as np
import xarray as xr

from cortexbench.device import resolve_device
from cortexbench.errors import InputError
from cortexbench.interfaces import MetricContract
from cortexbench.plugins.metrics.arrays import pairs

from . import VERSION
from . import functional as F


class RSA:
    """Representational similarity: ``compare(RDM(source), RDM(target))``.

    ``distance``: "correlation" (1 - Pearson r, the default of Kriegeskorte et al. 2008) or "euclidean", on features
    z-scored per column first when ``zscore`` (Net2Brain's default);
    ``comparison``: "spearman" (Brain-Score, rsatoolbox's rank-based default), "pearson" (Höfling et al.) or
    "kendall" (Kendall's tau-a, rsatoolbox's choice when model RDMs have ties).
    """

    identifier = "rsa"
    version = VERSION
    contract = MetricContract(
        source_dims=("stimulus", "feature"), target_dims=("stimulus", "neuroid"), min_stimuli=4,
        description="features of the same stimuli in the same order; extra leading dimensions are batched")

    def __init__(self, distance: str = "correlation", comparison: str = "spearman", device: str = "cpu",
                 zscore: bool = False):
        if distance not in F.DISTANCES:
            raise InputError(f"rsa: distance must be one of {F.DISTANCES}, got {distance!r}")
        if comparison not in F.COMPARISONS:
            raise InputError(f"rsa: comparison must be one of {F.COMPARISONS}, got {comparison!r}")
        self.distance, self.comparison, self.zscore = distance, comparison, bool(zscore)
        self.device = resolve_device(device)

    @property
    def config(self) -> dict[str, str]:
        config = {"distance": self.distance, "comparison": self.comparison}
        if self.zscore:  # only when set, so that existing configs (and their stored scores) stay as they were
            config["zscore"] = "true"
        return config

    def rdm(self, features) -> "F.torch.Tensor":
        return F.rdm(F.as_tensor(features, self.device), self.distance, zscore=self.zscore)

    def compare_rdms(self, a, b) -> np.ndarray:
        """All pairs between RDM batches ``(A, n, n)`` and ``(B, n, n)``: an ``(A, B)`` array."""
        a, b = F.as_tensor(a, self.device), F.as_tensor(b, self.device)
        return F.compare(F.upper(a).reshape(-1, _m(a)), F.upper(b).reshape(-1, _m(b)), self.comparison).cpu().numpy()

    def __call__(self, source: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
        batch = pairs(self.identifier, self.contract, source, target)
        values = self.compare_rdms(self.rdm(batch.sources), self.rdm(batch.targets))
        return batch.label(values, self.identifier, attrs=self.config)


def _m(rdms) -> int:
    n = rdms.shape[-1]
    return n * (n - 1) // 2
