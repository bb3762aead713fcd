"""Input checks and reshaping shared by the metric objects.

A metric compares ``source`` ``(..., stimulus, feature)`` with ``target`` ``(..., stimulus, neuroid)``; every leading
dimension is batched, and the result has dims ``(*source leading, *target leading, *metric's own)``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from cortexbench.errors import InputError
from cortexbench.interfaces import MetricContract
from cortexbench.stimuli import check_same_stimuli


@dataclass
class Pairs:
    """Flattened inputs: ``sources`` ``(A, n, d)`` and ``targets`` ``(B, n, d')`` plus what is needed to relabel."""

    sources: np.ndarray
    targets: np.ndarray
    source: xr.DataArray
    target: xr.DataArray

    @property
    def lead_dims(self) -> tuple[str, ...]:
        return (*self.source.dims[:-2], *self.target.dims[:-2])

    @property
    def lead_shape(self) -> tuple[int, ...]:
        return (*self.source.shape[:-2], *self.target.shape[:-2])

    def label(self, values: np.ndarray, metric: str, extra_dims: Sequence[str] = (),
              extra_coords: Mapping[str, Any] | None = None, attrs: Mapping[str, Any] | None = None) -> xr.DataArray:
        """``values`` of shape ``(A, B, *extra)`` as a DataArray with the leading dims of both inputs."""
        values = np.asarray(values)
        shape = self.lead_shape + values.shape[2:]
        coords = {d: self.source[d].values for d in self.source.dims[:-2] if d in self.source.coords}
        coords.update({d: self.target[d].values for d in self.target.dims[:-2] if d in self.target.coords})
        coords.update(extra_coords or {})
        return xr.DataArray(values.reshape(shape), dims=(*self.lead_dims, *extra_dims), coords=coords,
                            attrs={"metric": metric, **(attrs or {})})


def pairs(metric: str, contract: MetricContract, source: xr.DataArray, target: xr.DataArray) -> Pairs:
    """Check both inputs against ``contract`` and flatten their leading dimensions."""
    for name, array, core in (("source", source, contract.source_dims), ("target", target, contract.target_dims)):
        if not isinstance(array, xr.DataArray) or array.dims[-2:] != core:
            dims = getattr(array, "dims", type(array).__name__)
            raise InputError(f"{metric}: {name} must be a DataArray with trailing dims {core}, got {dims}")
        if array.sizes["stimulus"] < contract.min_stimuli:
            raise InputError(f"{metric}: {name} has {array.sizes['stimulus']} stimuli; at least "
                             f"{contract.min_stimuli} are needed")
    if source.sizes["stimulus"] != target.sizes["stimulus"]:
        raise InputError(f"{metric}: source has {source.sizes['stimulus']} stimuli but target has "
                         f"{target.sizes['stimulus']}; both must hold the same stimuli in the same order")
    if "stimulus" in source.coords and "stimulus" in target.coords:
        check_same_stimuli(source["stimulus"].values, target["stimulus"].values, f"{metric}: target vs source")
    shared = set(source.dims[:-2]) & set(target.dims[:-2])
    if shared:
        raise InputError(f"{metric}: source and target share the leading dimension(s) {sorted(shared)}; rename one "
                         "side's (e.g. 'subject' -> 'source_subject') so the result can hold both")
    n = source.sizes["stimulus"]
    return Pairs(sources=np.asarray(source.values).reshape(-1, n, source.shape[-1]),
                 targets=np.asarray(target.values).reshape(-1, n, target.shape[-1]), source=source, target=target)
