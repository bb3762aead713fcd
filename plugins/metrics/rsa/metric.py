"""The registered RSA metric: features -> RDMs -> RDM comparison, batched over leading dimensions."""
from __future__ import annotations

import numpy as np
import xarray as xr

from cortexbench.errors import InputError
from cortexbench.interfaces import MetricContract
from cortexbench.stimuli import check_same_stimuli

from . import VERSION
from . import functional as F


class RSA:
    """Representational similarity: ``compare(RDM(source), RDM(target))``.

    ``distance``: "correlation" (1 - Pearson r, the default of Kriegeskorte et al. 2008) or "euclidean";
    ``comparison``: "spearman" (Brain-Score, rsatoolbox's rank-based default) or "pearson" (Höfling et al.).
    """

    identifier = "rsa"
    version = VERSION
    contract = MetricContract(
        source_dims=("stimulus", "feature"), target_dims=("stimulus", "neuroid"), min_stimuli=4,
        description="features of the same stimuli in the same order; extra leading dimensions are batched")

    def __init__(self, distance: str = "correlation", comparison: str = "spearman", device: str = "cpu"):
        if distance not in F.DISTANCES:
            raise InputError(f"rsa: distance must be one of {F.DISTANCES}, got {distance!r}")
        if comparison not in F.COMPARISONS:
            raise InputError(f"rsa: comparison must be one of {F.COMPARISONS}, got {comparison!r}")
        self.distance, self.comparison, self.device = distance, comparison, device

    @property
    def config(self) -> dict[str, str]:
        return {"distance": self.distance, "comparison": self.comparison}

    def rdm(self, features) -> "F.torch.Tensor":
        return F.rdm(F.as_tensor(features, self.device), self.distance)

    def compare_rdms(self, a, b) -> np.ndarray:
        """All pairs between RDM batches ``(A, n, n)`` and ``(B, n, n)``: an ``(A, B)`` array."""
        a, b = F.as_tensor(a, self.device), F.as_tensor(b, self.device)
        return F.compare(F.upper(a).reshape(-1, _m(a)), F.upper(b).reshape(-1, _m(b)), self.comparison).cpu().numpy()

    def __call__(self, source: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
        for name, array, core in (("source", source, self.contract.source_dims),
                                  ("target", target, self.contract.target_dims)):
            if not isinstance(array, xr.DataArray) or array.dims[-2:] != core:
                dims = getattr(array, "dims", type(array).__name__)
                raise InputError(f"rsa: {name} must be a DataArray with trailing dims {core}, got {dims}")
            if array.sizes["stimulus"] < self.contract.min_stimuli:
                raise InputError(f"rsa: {name} has {array.sizes['stimulus']} stimuli; at least "
                                 f"{self.contract.min_stimuli} are needed")
        if "stimulus" in source.coords and "stimulus" in target.coords:
            check_same_stimuli(source["stimulus"].values, target["stimulus"].values, "rsa: target vs source")
        lead_s, lead_t = source.dims[:-2], target.dims[:-2]
        rdm_s = self.rdm(source.values.reshape(-1, *source.shape[-2:]))
        rdm_t = self.rdm(target.values.reshape(-1, *target.shape[-2:]))
        shape = tuple(source.sizes[d] for d in lead_s) + tuple(target.sizes[d] for d in lead_t)
        values = self.compare_rdms(rdm_s, rdm_t).reshape(shape)
        coords = {d: source[d].values for d in lead_s if d in source.coords}
        coords.update({d: target[d].values for d in lead_t if d in target.coords})
        return xr.DataArray(values, dims=(*lead_s, *lead_t), coords=coords,
                            attrs={"metric": self.identifier, **self.config})


def _m(rdms) -> int:
    n = rdms.shape[-1]
    return n * (n - 1) // 2
