"""The classic_rsa whole-procedure bootstrap against the former modal-layer bootstrap, timed in one run.

Planted RDMs of ``n`` stimuli (6 categories), ``L`` layers and ``S`` subjects per region; the bootstrap of the held-out
procedure (``held_out.held_out`` on 1000 resamples x ``bootstrap_splits`` splits x 2 halves) and, as the peer, the
former error (``functional.bootstrap_rsa``: full-set bootstrap of one layer, 1000 resamples). Also prints the SD
each gives; record the timings (and the device) in the classic_rsa README.

    python bench/classic_rsa_bootstrap.py --size small                 # CPU sanity check
    python bench/classic_rsa_bootstrap.py --device cuda --size full    # Kriegeskorte / Cichy sizes and a large set
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cortexbench.plugins.benchmarks.classic_rsa import held_out as H
from cortexbench.plugins.metrics.rsa import functional as F

SIZES = {  # (stimuli, layers, regions, subjects)
    "small": [(40, 4, 1, 4)],
    "full": [(92, 20, 1, 4), (92, 20, 2, 15), (300, 50, 2, 15)],
}


def planted(n: int, layers: int, regions: int, subjects: int, device: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 6
    latent = rng.normal(size=(6, 8))[labels] + rng.normal(size=(n, 8))
    read = lambda noise, width: latent @ rng.normal(size=(8, width)) + rng.normal(size=(n, width)) * noise  # noqa
    model = torch.stack([F.rdm(torch.tensor(read(1 + k % 3, 64), device=device)) for k in range(layers)])
    brain = torch.stack([torch.stack([F.rdm(torch.tensor(read(4.0, 50), device=device)) for _ in range(subjects)])
                         for _ in range(regions)])
    return model, brain, labels


def timed(fn, device: str):
    fn()  # warm-up (kernels, allocator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    args = parser.parse_args()
    for n, layers, regions, subjects in SIZES[args.size]:
        model, brain, labels = planted(n, layers, regions, subjects, args.device)
        stack = H.RDMStack.build(model, brain, loso=True)
        counts = H.resample_counts(n, args.n_bootstrap, 0)
        for splits in (2, 10):
            seconds, result = timed(lambda: H.held_out(stack, counts, labels, splits, np.random.default_rng(1), True),
                                    args.device)
            sd = np.std(H.split_variance_correction(result.split_values(), 10)[0], ddof=1)
            print(f"n={n} L={layers} G={regions} S={subjects} whole procedure, {splits:>2} splits/resample: "
                  f"{seconds:7.2f} s  SD {sd:.4f}")
        samples = F.bootstrap_samples(n, args.n_bootstrap, 0).to(args.device)
        seconds, old = timed(lambda: F.bootstrap_rsa(model[0], brain[0], samples, "spearman"), args.device)
        print(f"n={n} L={layers} G={regions} S={subjects} former modal-layer bootstrap (one layer, region 0): "
              f"{seconds:7.2f} s  SD {float(old.std()):.4f}")


if __name__ == "__main__":
    main()
