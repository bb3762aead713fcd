"""Reduce one layer's batch output to one vector per stimulus, on the device, before any host copy."""
from __future__ import annotations

from .errors import InputError
from .interfaces import POOLINGS


def pool(output, layout: str, mode: str):
    """``avg``: mean over space (NCHW/NHWC) or tokens (NLC); ``flatten``: everything, in NCHW/NLC order.

    Averages accumulate and return float32 even for bf16 activations (no rounding of the mean to bf16).
    """
    if mode not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS}, got {mode!r}")
    if output.ndim == 2 or layout == "NC":
        return output.reshape(output.shape[0], -1)
    if mode == "flatten":
        if layout == "NHWC":  # flatten in channel-first order so features match NCHW models
            output = output.movedim(-1, 1)
        return output.reshape(output.shape[0], -1)
    if layout == "NCHW":
        return output.mean(dim=tuple(range(2, output.ndim)), dtype=_float32(output))
    if layout in ("NHWC", "NLC"):
        return output.mean(dim=tuple(range(1, output.ndim - 1)), dtype=_float32(output))
    raise InputError(f"unknown layer layout {layout!r}; expected NCHW, NHWC, NLC or NC")


def average_frames(pooled, n_frames: int):
    """``(clips * frames, d)`` per-frame vectors -> ``(clips, d)``, the mean over each clip's frames (in float32)."""
    if pooled.shape[0] % n_frames:
        raise InputError(f"{pooled.shape[0]} frame vectors are not a whole number of {n_frames}-frame clips")
    return pooled.reshape(pooled.shape[0] // n_frames, n_frames, -1).mean(1, dtype=_float32(pooled))


def _float32(tensor):
    import torch

    return torch.float32 if tensor.dtype in (torch.bfloat16, torch.float16, torch.float32) else None
