"""Recover a float torchvision MobileNetV2 from the quantized TorchScript file.

The TorchScript graph was flattened by ``optimize_for_mobile``: it has no submodules to hook, and its packed
int8 weights hang off hoisted attributes named ``_jit_pass_hoist_conv_packed_params.<module path>._packed_params.N``
where ``<module path>`` is the torchvision module (``features.3.conv.1.0``). Each holds the convolution with batch
norm already folded in (a weight and a bias). We dequantize every one into the matching ``Conv2d`` of a fresh
torchvision ``mobilenet_v2`` and turn the following ``BatchNorm2d`` into an exact identity plus that bias
(weight 1, running mean 0, running variance ``1 - eps``). The classifier's ``LinearPackedParams`` fill
``classifier.1``. The result keeps torchvision's module names, so every block can be hooked.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

PREFIX = "_jit_pass_hoist_conv_packed_params."
ENGINE = "qnnpack"  # the iOS app's engine; the engine active at load time decides how weights are re-packed


@contextlib.contextmanager
def _quiet_native_warnings() -> Iterator[None]:
    """torch prints a C++ deprecation notice for every quantized tensor it creates, bypassing Python's ``warnings``.

    Loading this file is expected to create them, so the notice is noise; file descriptor 2 is silenced only for the
    load (Python exceptions still propagate normally).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_quantized(path: str | Path, engine: str = ENGINE) -> torch.jit.ScriptModule:
    """Load the TorchScript model with a fixed quantized engine (outputs depend on it; see the dataset's notes)."""
    previous = torch.backends.quantized.engine
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"quantized engine {engine!r} is not supported by this torch build "
                           f"(supported: {torch.backends.quantized.supported_engines})")
    torch.backends.quantized.engine = engine
    try:
        with _quiet_native_warnings():
            return torch.jit.load(str(path), map_location="cpu").eval()
    finally:
        torch.backends.quantized.engine = previous


def packed_convolutions(scripted: torch.jit.ScriptModule) -> dict[str, object]:
    """Module path -> packed conv params, read from the attribute names the graph uses."""
    names = sorted(set(re.findall(r'name="(' + re.escape(PREFIX) + r'[^"]+)"', str(scripted.graph))))
    return {name[len(PREFIX):].rsplit("._packed_params", 1)[0]: scripted._c.getattr(name) for name in names}


def recover_float_model(scripted: torch.jit.ScriptModule) -> torch.nn.Module:
    """A float ``torchvision.models.mobilenet_v2`` carrying the dequantized weights (batch norm folded)."""
    import torchvision

    model = torchvision.models.mobilenet_v2(weights=None).eval()
    modules = dict(model.named_modules())
    packed = packed_convolutions(scripted)
    expected = {n for n, m in modules.items() if isinstance(m, torch.nn.Conv2d)}
    if set(packed) != expected:
        raise RuntimeError(f"quantized graph does not match torchvision MobileNetV2: missing "
                           f"{sorted(expected - set(packed))[:5]}, unexpected {sorted(set(packed) - expected)[:5]}")
    with torch.no_grad(), _quiet_native_warnings():
        for path, params in packed.items():
            weight, bias = torch.ops.quantized.conv2d_unpack(params)
            conv = modules[path]
            parent, index = path.rsplit(".", 1)
            norm = modules[parent][int(index) + 1]
            if weight.shape != conv.weight.shape or not isinstance(norm, torch.nn.BatchNorm2d):
                raise RuntimeError(f"unexpected layout at {path}: weight {tuple(weight.shape)} vs "
                                   f"{tuple(conv.weight.shape)}, next module {type(norm).__name__}")
            conv.weight.copy_(weight.dequantize())
            norm.weight.fill_(1.0)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(1 - eps + eps) * 1 + bias == x + bias
            norm.bias.copy_(bias if bias is not None else torch.zeros_like(norm.bias))
        linear = scripted._c.getattr("classifier").getattr("1").getattr("_packed_params").getattr("_packed_params")
        weight, bias = torch.ops.quantized.linear_unpack(linear)
        model.classifier[1].weight.copy_(weight.dequantize())
        model.classifier[1].bias.copy_(bias)
    return model
