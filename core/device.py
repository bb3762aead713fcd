"""Device choice: ``auto`` takes CUDA when present; explicit requests are checked with clear errors."""
from __future__ import annotations

import os
import platform
import re

from .errors import InputError

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(requested: str = "auto") -> str:
    import torch

    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not re.fullmatch(r"cuda(:\d+)?", requested):
            raise InputError(f"--device {requested!r}: a CUDA device is cuda or cuda:N with N a device number, "
                             "e.g. cuda:0")
        if not torch.cuda.is_available():
            raise InputError(f"--device {requested}: no CUDA GPU is visible to PyTorch "
                             "(torch.cuda.is_available() is False); use --device cpu or --device auto")
        index = int(requested.split(":", 1)[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return f"cuda:{index}"
    raise InputError(f"--device must be auto, cpu, cuda or cuda:N; got {requested!r}")


def resolve_precision(requested: str, device: str) -> str:
    """``auto`` is bf16 autocast on CUDA (fast, ~3 significant digits) and fp32 on the CPU."""
    if requested not in PRECISIONS:
        raise InputError(f"--precision must be one of {PRECISIONS}; got {requested!r}")
    if requested == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    if requested == "bf16" and not device.startswith("cuda"):
        raise InputError(f"--precision bf16 needs a CUDA device (bf16 autocast is used on CUDA only); the device is "
                         f"{device}. Use --precision fp32 or auto on the CPU")
    return requested


def describe(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def available_memory(device) -> int:
    """Bytes a computation on CUDA ``device`` can still take: free on the device plus what torch's caching
    allocator holds unused (``mem_get_info`` alone misses that, so a second pass in one process would plan with
    a fraction of the memory the first one had)."""
    import torch

    device = torch.device(device)
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
