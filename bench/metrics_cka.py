"""RBF-CKA many-pairs grid (cortexbench) against per-pair loops, in one run on one device.

The task is Shen et al.'s: every layer x every region x every sigma, features z-scored per column, K = exp(-d^2 /
(2 sigma^2)) with the same sigma on both sides, biased HSIC. Peers, both timed on a random sample of pairs and
extrapolated linearly to the whole grid (every pair costs the same):

* ``torch-cka style``: the loop of FloyedShen/BrainAlign (and torch-cka / Brain-Score's kernel_CKA): for each pair,
  both kernels from ``cdist``, HSIC = trace(K H L H) with the centring matrix H, three HSICs per CKA.
* ``per-pair, row-mean centring``: the same loop made as cheap as a loop can be (kernels rebuilt per pair, centred by
  row means, one Frobenius product): the strongest loop baseline.

Accuracy: the grid's values on the sampled pairs against a float64 per-pair computation (max absolute error).

    python bench/metrics_cka.py --size small                      # CPU sanity check (seconds)
    python bench/metrics_cka.py --device cuda --size full         # 16 layers x 180 regions x 12 sigmas, n = 8000
    python bench/metrics_cka.py --device cuda --size nsd          # 60 layers x 180 regions x 12 sigmas, n = 9000
"""
from __future__ import annotations

import math

import numpy as np
import torch

import metrics_common as common
from cortexbench.plugins.metrics.cka import functional as F

SIZES = {  # n stimuli, layers, layer width, regions, region widths (min, max), sigmas, sampled loop pairs
    "small": dict(n=300, layers=3, width=64, regions=10, voxels=(20, 120), sigmas=3, loop_pairs=6),
    "medium": dict(n=2000, layers=8, width=512, regions=60, voxels=(50, 800), sigmas=12, loop_pairs=8),
    "full": dict(n=8000, layers=16, width=768, regions=180, voxels=(100, 1500), sigmas=12, loop_pairs=6),
    "nsd": dict(n=9000, layers=60, width=768, regions=180, voxels=(100, 1500), sigmas=12, loop_pairs=4),
}


def make_data(size: dict, dev: torch.device, seed: int):
    """Layers and regions sharing an 8-d latent, so CKA values are neither 0 nor 1."""
    gen = torch.Generator(device=dev).manual_seed(seed)
    n = size["n"]
    latent = torch.randn(n, 8, generator=gen, device=dev)

    def block(width: int, noise: float) -> torch.Tensor:
        return latent @ torch.randn(8, width, generator=gen, device=dev) + noise * torch.randn(
            n, width, generator=gen, device=dev)

    layers = [block(size["width"], 0.5 + 2.0 * i / max(1, size["layers"] - 1)) for i in range(size["layers"])]
    widths = torch.randint(size["voxels"][0], size["voxels"][1] + 1, (size["regions"],), generator=torch.Generator()
                           .manual_seed(seed))
    regions = [block(int(w), 1.0 + 3.0 * float(torch.rand((), generator=torch.Generator().manual_seed(seed + i))))
               for i, w in enumerate(widths)]
    sigmas = [float(s) for s in np.linspace(12, 100, size["sigmas"])] if size["sigmas"] > 3 else [12.0, 36.0, 100.0]
    return layers, regions, sigmas


def zscore(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0, keepdim=True)) / (x.std(0, keepdim=True) + 1e-8)


def shen_style_pair(x: torch.Tensor, y: torch.Tensor, sigma: float) -> float:
    """One pair as FloyedShen/BrainAlign computes it (written here, not copied): trace(K H L H), three HSICs."""
    x, y = zscore(x), zscore(y)
    k = torch.exp(-torch.cdist(x, x) ** 2 / (2 * sigma ** 2))
    l = torch.exp(-torch.cdist(y, y) ** 2 / (2 * sigma ** 2))
    h = torch.eye(k.shape[0], dtype=k.dtype, device=k.device) - 1.0 / k.shape[0]

    def hsic(a, b):
        return torch.trace(a @ h @ b @ h)

    return float(hsic(k, l) / (torch.sqrt(hsic(k, k) * hsic(l, l)) + 1e-6))


def fast_pair(x: torch.Tensor, y: torch.Tensor, sigma: float) -> float:
    """One pair as cheaply as a loop allows: kernels rebuilt, centred by row means, one Frobenius product."""
    def centred(a):
        a = zscore(a)
        sq = (a * a).sum(1)
        k = torch.exp(-(sq[:, None] + sq[None, :] - 2 * a @ a.T).clamp_min(0) / (2 * sigma ** 2))
        means = k.mean(0)
        return k - means[:, None] - means[None, :] + means.mean()

    kc, lc = centred(x), centred(y)
    return float((kc * lc).sum() / (kc.norm() * lc.norm()))


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], tuple(SIZES))
    p.add_argument("--dtypes", default="float32,tf32,bfloat16",
                   help="grid precisions to time: float32 (true fp32 products), tf32, bfloat16 (comma-separated)")
    args = p.parse_args()
    dev = common.device(args.device)
    size = SIZES[args.size]
    layers, regions, sigmas = make_data(size, dev, args.seed)
    n_pairs = len(layers) * len(regions) * len(sigmas)
    common.result(f"cka grid: n={size['n']} layers={len(layers)} (width {size['width']}) regions={len(regions)} "
                  f"(widths {size['voxels'][0]}-{size['voxels'][1]}) sigmas={len(sigmas)} pairs={n_pairs} "
                  f"device={common.describe(dev)}")
    # warm-up: CUDA context, cuBLAS handles, kernels
    F.rbf_cka_grid([layers[0][:64]], [regions[0][:64]], sigmas[:1], device=dev)

    rng = np.random.default_rng(args.seed)
    sample = [(int(rng.integers(len(layers))), int(rng.integers(len(regions))), int(rng.integers(len(sigmas))))
              for _ in range(size["loop_pairs"])]
    reference = np.array([fast_pair(layers[i].double(), regions[j].double(), sigmas[s]) for i, j, s in sample])

    times: dict[str, float] = {}
    errors: dict[str, float] = {}
    for name in args.dtypes.split(","):
        dtype = {"float32": torch.float32, "tf32": torch.float32, "bfloat16": torch.bfloat16}[name]
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        with common.timer(dev, times, name):
            grid = F.cka_grid(iter(layers), regions, kernel="rbf", sigmas=sigmas, zscore=True, device=dev,
                              dtype=dtype, tf32=name == "tf32")
        errors[name] = float(np.abs(np.array([float(grid[i, j, s]) for i, j, s in sample]) - reference).max())
        common.result(f"cortexbench rbf_cka_grid [{name}]: {times[name]:.3f} s for {n_pairs} pairs "
                      f"({times[name] / n_pairs * 1e6:.1f} us/pair), max |error| vs float64 = {errors[name]:.1e} "
                      f"(on {len(sample)} sampled pairs), peak GPU memory {common.peak_memory(dev)}")

    loops = {}
    for label, fn in (("torch-cka style (trace K H L H)", shen_style_pair), ("per-pair, row-mean centring", fast_pair)):
        with common.timer(dev, times, label):
            values = [fn(layers[i], regions[j], sigmas[s]) for i, j, s in sample]
        per_pair = times[label] / len(sample)
        loops[label] = per_pair * n_pairs
        loop_error = float(np.abs(np.array(values) - reference).max())
        common.result(f"per-pair loop, {label} [float32]: {per_pair:.4f} s/pair -> {loops[label]:.1f} s for the grid "
                      f"(timed on {len(sample)} pairs, extrapolated), max |error| vs float64 = {loop_error:.1e}")

    best = min(times[k] for k in args.dtypes.split(","))
    fastest = min(args.dtypes.split(","), key=lambda k: times[k])
    for label, total in loops.items():
        ratio = total / best
        goal = " (goal >= 50x)" if label.startswith("torch-cka") else ""
        common.record(f"rbf-cka grid {args.size} (n={size['n']}, {len(layers)}x{len(regions)}x{len(sigmas)}) on "
                      f"{common.describe(dev)}: cortexbench [{fastest}] {best:.3f} s vs {label} loop "
                      f"{total:.2f} s: {ratio:.1f}x{goal}")
    for name in args.dtypes.split(","):
        common.record(f"rbf-cka grid {args.size} [{name}]: {times[name]:.3f} s, max |error| {errors[name]:.1e}")
    if not math.isfinite(best):
        raise SystemExit("no timing")


if __name__ == "__main__":
    main()
