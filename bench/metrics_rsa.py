"""RSA (cortexbench) against rsatoolbox, in one run: RDMs from features, then every model RDM against every brain RDM.

Both compute correlation-distance RDMs (1 - Pearson r) for every layer and every subject, then compare all pairs by
Spearman rho, Pearson r ("corr") and Kendall's tau-a. cortexbench runs on ``--device``; rsatoolbox is numpy on the
CPU. The max absolute difference between the two libraries' values is printed with each timing.

    python bench/metrics_rsa.py --size small                      # CPU sanity check
    python bench/metrics_rsa.py --device cuda --size full         # 1000 stimuli, 60 layers x 40 subjects
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

import metrics_common as common
from cortexbench.plugins.metrics.rsa import functional as F

SIZES = {  # stimuli, layers, layer width, subjects, voxels; Kendall runs on the first kendall_n stimuli
    "small": dict(n=60, layers=4, width=200, subjects=5, voxels=80, kendall_n=40),
    "medium": dict(n=500, layers=20, width=1024, subjects=15, voxels=500, kendall_n=100),
    "full": dict(n=1000, layers=60, width=2048, subjects=40, voxels=1000, kendall_n=150),
}
METHODS = {"spearman": "spearman", "pearson": "corr", "kendall": "tau-a"}  # ours -> rsatoolbox's name


def make_data(size: dict, seed: int):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(size["n"], 10))
    layers = np.stack([latent @ rng.normal(size=(10, size["width"])) + rng.normal(size=(size["n"], size["width"])) * s
                       for s in np.linspace(0.5, 4, size["layers"])]).astype(np.float32)
    subjects = np.stack([latent @ rng.normal(size=(10, size["voxels"]))
                         + 3 * rng.normal(size=(size["n"], size["voxels"])) for _ in range(size["subjects"])])
    subjects = subjects.astype(np.float32)
    return layers, subjects


def ours(layers, subjects, method: str, dev: torch.device) -> np.ndarray:
    a = F.upper(F.rdm(torch.as_tensor(layers, device=dev, dtype=torch.float64), "correlation"))
    b = F.upper(F.rdm(torch.as_tensor(subjects, device=dev, dtype=torch.float64), "correlation"))
    return F.compare(a, b, method).cpu().numpy()


def rsatoolbox_run(layers, subjects, method: str) -> np.ndarray:
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = calc_rdm([Dataset(x.astype(np.float64)) for x in layers], method="correlation")
        b = calc_rdm([Dataset(x.astype(np.float64)) for x in subjects], method="correlation")
        return compare(a, b, method=METHODS[method])


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], tuple(SIZES))
    p.add_argument("--peer-layers", type=int, default=None,
                   help="time rsatoolbox on this many layers (x all subjects) and extrapolate linearly in pairs "
                        "(default: all layers)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    args = p.parse_args()
    dev = common.device(args.device)
    size = SIZES[args.size]
    layers, subjects = make_data(size, args.seed)
    pairs = size["layers"] * size["subjects"]
    common.result(f"rsa: {size['n']} stimuli (Kendall: {size['kendall_n']}), {size['layers']} layers x "
                  f"{size['subjects']} subjects = {pairs} RDM pairs, device={common.describe(dev)}")
    methods = [m for m in args.methods.split(",") if m]
    for method in methods:  # warm-up: CUDA context and kernels; rsatoolbox's and scipy's first-call imports
        ours(layers[:1, :10], subjects[:1, :10], method, dev)
        rsatoolbox_run(layers[:1, :10], subjects[:1, :10], method)
    times: dict[str, float] = {}
    peer_layers = min(args.peer_layers or size["layers"], size["layers"])
    for method in methods:
        n = size["kendall_n"] if method == "kendall" else size["n"]
        x, y = layers[:, :n], subjects[:, :n]
        with common.timer(dev, times, f"ours-{method}"):
            mine = ours(x, y, method, dev)
        with common.timer(torch.device("cpu"), times, f"peer-{method}"):
            theirs = rsatoolbox_run(x[:peer_layers], y, method)
        times[f"peer-{method}"] *= size["layers"] / peer_layers       # linear in the number of RDM pairs
        mine = mine[:peer_layers]
        ratio = times[f"peer-{method}"] / times[f"ours-{method}"]
        if peer_layers < size["layers"]:
            common.result(f"{method}: rsatoolbox timed on {peer_layers} of {size['layers']} layers, extrapolated")
        common.result(f"{method} (n={n}): cortexbench {times[f'ours-{method}']:.3f} s, rsatoolbox "
                      f"{times[f'peer-{method}']:.3f} s (cpu, method '{METHODS[method]}'): {ratio:.1f}x; "
                      f"max |difference| {np.abs(mine - theirs).max():.1e}")
        common.record(f"rsa {args.size} {method} (n={n}, {pairs} pairs) on {common.describe(dev)}: cortexbench "
                      f"{times[f'ours-{method}']:.4f} s vs rsatoolbox {times[f'peer-{method}']:.4f} s: {ratio:.1f}x")


if __name__ == "__main__":
    main()
