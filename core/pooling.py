"""Reduce one layer's batch output to one vector per stimulus, on the device, before any host copy."""
from __future__ import annotations

from .errors import InputError
from .interfaces import POOLINGS


def pool(output, layout: str, mode: str):
    """``avg``: mean over space (NCHW/NHWC) or tokens (NLC); ``flatten``: everything, in NCHW/NLC order."""
    if mode not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS}, got {mode!r}")
    if output.ndim == 2 or layout == "NC":
        return output.reshape(output.shape[0], -1)
    if mode == "flatten":
        if layout == "NHWC":  # flatten in channel-first order so features match NCHW models
            output = output.movedim(-1, 1)
        return output.reshape(output.shape[0], -1)
    if layout == "NCHW":
        return output.mean(dim=tuple(range(2, output.ndim)))
    if layout in ("NHWC", "NLC"):
        return output.mean(dim=tuple(range(1, output.ndim - 1)))
    raise InputError(f"unknown layer layout {layout!r}; expected NCHW, NHWC, NLC or NC")
