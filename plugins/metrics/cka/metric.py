"""The registered CKA metrics: every source against every target in one batched grid."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from cortexbench.device import resolve_device
from cortexbench.errors import InputError
from cortexbench.interfaces import MetricContract
from cortexbench.plugins.metrics.arrays import pairs

from . import VERSION
from . import functional as F

_DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


class CKA:
    """Centred kernel alignment of ``source`` ``(..., stimulus, feature)`` with ``target`` ``(..., stimulus, neuroid)``.

    ``kernel="linear"`` (identifier ``cka``) or ``"rbf"`` (identifier ``rbf-cka``). The RBF kernel takes ``sigmas``
    (fixed, both sides; default Shen et al.'s 12, 20, ..., 100 on z-scored features) or ``thresholds`` (x each side's
    median distance, Kornblith et al.). ``debiased=True`` uses the unbiased HSIC (needs 4 stimuli). The result keeps
    all leading dimensions of both inputs, plus ``sigma``/``threshold`` for the RBF kernel.
    """

    version = VERSION

    def __init__(self, kernel: str = "linear", *, debiased: bool = False, sigmas: Sequence[float] | None = None,
                 thresholds: Sequence[float] | None = None, zscore: bool | None = None, device: str = "cpu",
                 dtype: str | torch.dtype | None = None, chunk_size: int | None = None):
        if kernel not in F.KERNELS:
            raise InputError(f"cka: kernel must be one of {F.KERNELS}, got {kernel!r}")
        self.identifier = "cka" if kernel == "linear" else "rbf-cka"
        if kernel == "rbf" and sigmas is None and thresholds is None:
            sigmas = F.SHEN_SIGMAS
        if kernel == "linear" and (sigmas is not None or thresholds is not None):
            raise InputError("cka: sigmas/thresholds apply to rbf-cka only")
        self.kernel, self.debiased, self.chunk_size = kernel, bool(debiased), chunk_size
        self.device = resolve_device(device)
        self.sigmas = None if sigmas is None else [float(s) for s in np.atleast_1d(sigmas)]
        self.thresholds = None if thresholds is None else [float(t) for t in np.atleast_1d(thresholds)]
        # Shen et al. z-score before a fixed sigma; a median-scaled sigma and the linear kernel do not need it
        self.zscore = bool(zscore) if zscore is not None else self.sigmas is not None
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise InputError(f"cka: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
            dtype = _DTYPES[dtype]
        self.dtype = dtype or (torch.float32 if self.device.startswith("cuda") else torch.float64)
        self.contract = MetricContract(
            source_dims=("stimulus", "feature"), target_dims=("stimulus", "neuroid"),
            min_stimuli=4 if self.debiased else 2,
            description="features of the same stimuli in the same order; extra leading dimensions are batched")

    @property
    def config(self) -> dict:
        return {"kernel": self.kernel, "hsic": "unbiased" if self.debiased else "biased", "zscore": self.zscore,
                "sigmas": self.sigmas, "thresholds": self.thresholds, "dtype": str(self.dtype).replace("torch.", "")}

    def __call__(self, source: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
        batch = pairs(self.identifier, self.contract, source, target)
        values = F.cka_grid(list(batch.sources), list(batch.targets), kernel=self.kernel, sigmas=self.sigmas,
                            thresholds=self.thresholds, zscore=self.zscore,
                            hsic="unbiased" if self.debiased else "biased", device=self.device, dtype=self.dtype,
                            chunk_size=self.chunk_size).numpy()
        attrs = {k: str(v) for k, v in self.config.items()}
        if self.kernel == "linear":
            return batch.label(values[..., 0], self.identifier, attrs=attrs)
        dim, settings = ("sigma", self.sigmas) if self.sigmas is not None else ("threshold", self.thresholds)
        return batch.label(values, self.identifier, extra_dims=(dim,), extra_coords={dim: settings}, attrs=attrs)
