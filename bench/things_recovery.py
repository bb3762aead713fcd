"""Time the model-recovery refits: batched L-BFGS (ours) against one torch.optim.LBFGS per fit (the reference's way).

The timed unit is what one candidate faces in one simulation job of Avitan & Golan (2025): for every seed, the 3
concept folds x 11 lambdas (1e-6 ... 1e4) fits of a full p x p W on N synthetic training triplets (1854 concepts,
KFold(3) + 865/371 concept splits, unique triplets), judgments simulated from a planted generator at a calibrated
temperature. Ours solves all (seed, fold, lambda) problems in one batched run (``fitting.fit``: used-concept,
chunked, hand-differentiated objective; ``--tf32`` for TF32 products on CUDA). Two peers run the same problems one
after the other with ``torch.optim.LBFGS`` exactly as the reference code does (``sequential.fit_one``), on the same
device, for ``--peer-fits`` of them each, extrapolated linearly (the fits are independent and alike):

* ``paper``: the paper's code path, ``sequential.DenseObjective`` (Z for all 1854 concepts, the full Gram matrix,
  gathered entries, autograd), in the default precision (no TF32), as ``CogModel.fit_W_matrix``;
* ``torch-lbfgs``: the same loop on our objective, so its ratio isolates the batched solver.

Ours and each peer are also compared on the fits the peer ran (validation accuracy, relative parameter difference).

Projection: the paper's grid is 20 generators x 30 seeds x 18 training sizes (50 ... 4.2M), each job refitting 20
candidates x 3 folds x 11 lambdas = 7.1 M fits. The per-fit time is measured at each ``--n-train`` and modelled as
a + b N (a, b >= 0, fitted on the measured sizes) for the paper's 18 sizes; add a large N (e.g. 1638400) to
``--n-train`` to shorten the extrapolation.

CPU sanity check:  python bench/things_recovery.py --size small
Real figures:      python bench/things_recovery.py --size full --device cuda --seeds 10 [--tf32]
Record in the docs: device, features p, seeds, TF32 on/off, per N: "ours per fit (ms)", "paper per fit (ms)" and
the speed-up over it (goal >= 20x), the torch-lbfgs speed-up, the max validation-accuracy difference, and the
projected device-hours of the paper grid for ours and for the paper's code path.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from cortexbench.plugins.benchmarks.things_oddoneout import fitting
from cortexbench.plugins.benchmarks.things_oddoneout.calibration import calibrate_temperature
from cortexbench.plugins.benchmarks.things_oddoneout.fitting import SolverSettings
from cortexbench.plugins.benchmarks.things_oddoneout.objective import Transform, TripletBatch, TripletObjective
from cortexbench.plugins.benchmarks.things_oddoneout.recovery import CANDIDATE_LAMBDAS, PAPER_N_TRAIN, draw_triplets
from cortexbench.plugins.benchmarks.things_oddoneout.sequential import DenseObjective, fit_one
from cortexbench.plugins.benchmarks.things_oddoneout.triplets import one_hot

SIZES = {"small": dict(features=16, n_train=[200, 800], seeds=1, peer_fits=6, lambdas=4),
         "full": dict(features=512, n_train=[400, 6400, 102400], seeds=2, peer_fits=24, lambdas=11)}
N_CONCEPTS = 1854
PAPER_FITS_PER_N = 20 * 30 * 20 * 3 * 11          # generators x seeds x candidates x folds x lambdas


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def simulated_sets(features: torch.Tensor, n_train: int, seeds: int, settings: SolverSettings):
    """(train, val) sets per (seed, fold) with judgments from a planted generator calibrated to 0.678."""
    rng = np.random.default_rng(0)
    hidden = features @ torch.tensor(rng.normal(size=(features.shape[1], 16)) / math.sqrt(features.shape[1]),
                                     dtype=features.dtype, device=features.device)
    generator = TripletObjective(hidden, Transform.make("zero_shot", 16))
    none = torch.zeros(1, 0, dtype=features.dtype, device=features.device)
    probe_triplets = torch.as_tensor(draw_triplets(2000, 999, N_CONCEPTS, np.empty(0, np.int64)).folds[0][0],
                                     device=features.device)
    logits = generator.logits(none, probe_triplets[None])[0].double().cpu().numpy()
    temperature = calibrate_temperature(logits, np.ones(len(logits)), 0.678)
    train, val = [], []
    for seed in range(seeds):
        for fold in draw_triplets(n_train, seed, N_CONCEPTS, np.empty(0, np.int64)).folds:
            for sets, triplets in ((train, fold[0]), (val, fold[1])):
                index = torch.as_tensor(triplets, device=features.device)[None]
                p = generator.probabilities(none, index, temperature)[0].double().cpu().numpy()
                choice = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)[:, :2]).sum(axis=1)
                sets.append(one_hot(triplets, choice))
    return train, val


def run(n_train: int, cfg: dict, device: str, dtype: str, max_batch: int | None, tf32: bool) -> dict:
    settings = SolverSettings(device=device, dtype=dtype, max_batch=max_batch, tf32=tf32)
    rng = np.random.default_rng(1)
    features = fitting.as_features(rng.normal(size=(N_CONCEPTS, cfg["features"])), settings)
    train, val = simulated_sets(features, n_train, cfg["seeds"], settings)
    lambdas = list(CANDIDATE_LAMBDAS)[:: max(1, len(CANDIDATE_LAMBDAS) // cfg["lambdas"])][: cfg["lambdas"]]
    transform = Transform.make("full", cfg["features"])
    problems = [(d, lam) for d in range(len(train)) for lam in lambdas]
    peers = {"paper": DenseObjective(features, transform), "torch-lbfgs": TripletObjective(features, transform)}
    warm = TripletBatch.stack([train[0]], settings.torch_dtype, device)            # one-time initialisation
    for objective in peers.values():
        fit_one(objective, warm, 0, 1.0)
    fitting.fit(features, transform, train[:1], [0], [1.0], settings)
    synchronize(device)
    start = time.perf_counter()
    ours = fitting.fit(features, transform, train, [d for d, _ in problems], [lam for _, lam in problems], settings)
    synchronize(device)
    ours_s = time.perf_counter() - start
    ours_val = fitting.correct(features, transform, ours, val, [d for d, _ in problems], settings)
    row = {"n_train": n_train, "fits": len(problems), "ours_s": ours_s, "ours_ms": 1e3 * ours_s / len(problems)}
    pick = np.linspace(0, len(problems) - 1, min(cfg["peer_fits"], len(problems))).round().astype(int)
    for name, objective in peers.items():
        peer_s, worst_acc, worst_param = 0.0, 0.0, 0.0
        for b in pick:
            d, lam = problems[b]
            data = TripletBatch.stack([train[d]], settings.torch_dtype, device)
            synchronize(device)
            start = time.perf_counter()
            x, _ = fit_one(objective, data, 0, lam)
            synchronize(device)
            peer_s += time.perf_counter() - start
            right = fitting.correct(features, transform, x[None], val, [d], settings)[0]
            worst_acc = max(worst_acc, abs(right - ours_val[b]) / val[d].n_responses)
            worst_param = max(worst_param, float((x - ours[b]).norm() / x.norm()))
        row[name] = {"fits": len(pick), "ms": 1e3 * peer_s / len(pick), "speedup": (peer_s / len(pick)) /
                     (ours_s / len(problems)), "max_val_acc_diff": worst_acc, "max_rel_param_diff": worst_param}
    return row


def project(rows: list[dict], key: str) -> float:
    """Hours for the paper grid with the per-fit time modelled as a + b N, a, b >= 0 (non-negative least squares on
    the measured sizes: evaluations cost grows linearly with the triplets, the optimiser's overhead does not)."""
    from scipy.optimize import nnls

    n = np.array([r["n_train"] for r in rows], dtype=float)
    t = np.array([r[key]["ms"] if isinstance(r[key], dict) else r[key] for r in rows], dtype=float) / 1e3
    (a, b), _ = nnls(np.stack([np.ones_like(n), n], axis=1), t)
    return sum(a + b * m for m in PAPER_N_TRAIN) * PAPER_FITS_PER_N / 3600


def main() -> None:
    from cortexbench.progress import progress_enabled

    with progress_enabled(False):
        _main()


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--n-train", type=int, nargs="+", help="training sizes to time (default: per --size)")
    parser.add_argument("--features", type=int, help="feature dimensions p (default: per --size)")
    parser.add_argument("--seeds", type=int, help="seeds per batched run (default: per --size)")
    parser.add_argument("--peer-fits", type=int, help="sequential fits to time (default: per --size)")
    parser.add_argument("--max-batch", type=int, help="problems per batched run (default: by memory)")
    parser.add_argument("--tf32", action="store_true", help="TF32 matrix products for ours on CUDA (float32 only; "
                        "the paper peer keeps torch's default precision)")
    args = parser.parse_args()
    cfg = dict(SIZES[args.size])
    for key in ("n_train", "features", "seeds", "peer_fits"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({name}), dtype {args.dtype}, TF32 {'on' if args.tf32 else 'off'} (ours), features "
          f"p = {cfg['features']}, {cfg['seeds']} seed(s) x 3 folds x {cfg['lambdas']} lambdas per batched run")
    rows = []
    for n in cfg["n_train"]:
        row = run(n, cfg, args.device, args.dtype, args.max_batch, args.tf32)
        rows.append(row)
        print(f"N = {n:>8}: ours {row['fits']} fits in {row['ours_s']:.2f} s = {row['ours_ms']:.2f} ms/fit")
        for peer in ("paper", "torch-lbfgs"):
            r = row[peer]
            print(f"    {peer:>11} ({r['fits']} sequential fits): {r['ms']:.1f} ms/fit; speed-up {r['speedup']:.1f}x; "
                  f"max |val acc diff| {r['max_val_acc_diff']:.4f}, max rel param diff {r['max_rel_param_diff']:.2e}")
    print("speed-up over the paper's code path per N: "
          + ", ".join(f"{r['n_train']}: {r['paper']['speedup']:.1f}x" for r in rows) + " (goal >= 20x)")
    measured = ", ".join(str(r["n_train"]) for r in rows)
    print(f"projected paper grid (20 generators x 30 seeds x 18 N, {PAPER_FITS_PER_N:,} fits per N) at p = "
          f"{cfg['features']}: ours {project(rows, 'ours_ms'):,.1f} device-hours, paper's code path "
          f"{project(rows, 'paper'):,.1f}, torch-lbfgs on our objective {project(rows, 'torch-lbfgs'):,.1f} "
          f"(per-fit time a + b N fitted on N = {measured}; extrapolated up to N = {PAPER_N_TRAIN[-1]:,})")


if __name__ == "__main__":
    main()
