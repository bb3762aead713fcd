"""Temperature calibration of a generating model: its expected accuracy equals the human noise ceiling.

The reference code fits the temperature T with L-BFGS on ``(mean max_c P_T(c) - ceiling)^2`` over the calibration
judgments. The mean maximum probability decreases monotonically in T (each triplet's does), so the minimiser is the
unique root of ``mean max P_T = ceiling``; we find it by bisection on log T to machine precision instead.
"""
from __future__ import annotations

import numpy as np
import torch

from cortexbench.errors import InputError


def expected_accuracy(logits: np.ndarray, weights: np.ndarray, temperature: float) -> float:
    """Judgment-weighted mean of the largest choice probability at temperature T."""
    z = torch.as_tensor(logits, dtype=torch.float64) / temperature
    top = torch.softmax(z, dim=-1).max(dim=-1).values.numpy()
    return float(np.sum(top * weights) / np.sum(weights))


def calibrate_temperature(logits: np.ndarray, weights: np.ndarray, target: float, *, iterations: int = 200) -> float:
    """T such that the expected accuracy of ``softmax(logits / T)`` equals ``target`` (logits at T = 1)."""
    logits = np.asarray(logits, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    spread = float(np.abs(logits - logits.mean(axis=-1, keepdims=True)).max()) if logits.size else 0.0
    if not np.isfinite(spread) or spread <= 0:
        raise InputError("cannot calibrate a temperature: the model gives every triplet equal similarities")
    low, high = np.log(spread) - 40.0, np.log(spread) + 40.0
    sharpest = expected_accuracy(logits, weights, np.exp(low))
    flattest = expected_accuracy(logits, weights, np.exp(high))
    if not flattest < target < sharpest:
        raise InputError(f"cannot calibrate a temperature to expected accuracy {target:.4f}: the model's expected "
                         f"accuracy ranges only over ({flattest:.4f}, {sharpest:.4f})")
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        if expected_accuracy(logits, weights, np.exp(middle)) > target:
            low = middle
        else:
            high = middle
        if high - low < 1e-13:
            break
    return float(np.exp(0.5 * (low + high)))
