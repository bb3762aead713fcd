"""Cross-validated ridge encoding (cortexbench ``ridge_cv``) against himalaya and scikit-learn, in one run.

The task is Hoefling et al.'s at BOLD Moments scale: features and responses z-scored with training statistics,
5 shuffled outer folds, alpha from logspace(0, 9, 19) chosen inside each fold, every fold model scored on its
held-out fold and on the test set. Contenders:

* cortexbench ``ridge_cv``: efficient leave-one-out (as sklearn's RidgeCV), one alpha shared by all targets per fold
  (Hoefling et al.), and the per-target variant (as himalaya);
* himalaya ``RidgeCV`` and ``KernelRidgeCV`` (per-target alphas chosen by an inner 5-fold CV; backend torch_cuda on
  a GPU): the GPU library a user would pick;
* scikit-learn ``RidgeCV`` on the CPU (Hoefling et al.'s own code path, float32 inputs), timed on a subset of targets
  and extrapolated linearly (its cost per alpha is O(n^2 t)).

    python bench/metrics_ridge.py --size small                    # CPU sanity check
    python bench/metrics_ridge.py --device cuda --size full       # 998 x 5919 -> 20,000 targets (+102 test)
"""
from __future__ import annotations

import os

import numpy as np
import torch

import metrics_common as common
from cortexbench.plugins.metrics.ridge import functional as R

SIZES = {  # training samples, test samples, features, targets, targets given to sklearn
    "small": dict(n=200, n_test=40, p=300, t=500, sklearn_t=500),
    "medium": dict(n=998, n_test=102, p=5919, t=2000, sklearn_t=500),
    "full": dict(n=998, n_test=102, p=5919, t=20000, sklearn_t=1000),
}
ALPHAS = np.logspace(0, 9, 19)
SEED = 1  # Hoefling et al.'s KFold seed


def make_data(size: dict, dev: torch.device, seed: int):
    gen = torch.Generator(device=dev).manual_seed(seed)
    n = size["n"] + size["n_test"]
    latent = torch.randn(n, 40, generator=gen, device=dev)
    X = latent @ torch.randn(40, size["p"], generator=gen, device=dev) + 2.0 * torch.randn(
        n, size["p"], generator=gen, device=dev)
    weight = torch.randn(40, size["t"], generator=gen, device=dev) * torch.rand(size["t"], generator=gen, device=dev)
    Y = latent @ weight + 3.0 * torch.randn(n, size["t"], generator=gen, device=dev)
    return X[:size["n"]], Y[:size["n"]], X[size["n"]:], Y[size["n"]:]


def standardise(Xtr, Ytr, Xte, Yte):
    mx, sx, my, sy = Xtr.mean(0), Xtr.std(0, correction=0), Ytr.mean(0), Ytr.std(0, correction=0)
    return (Xtr - mx) / sx, (Ytr - my) / sy, (Xte - mx) / sx, (Yte - my) / sy


def r2(pred, true):
    true_c = true - true.mean(0)
    return 1.0 - ((true - pred) ** 2).sum(0) / (true_c * true_c).sum(0)


def run_himalaya(kind: str, Xtr, Ytr, Xte, Yte, dev: torch.device) -> np.ndarray:
    """Per-target test R^2 averaged over the 5 outer fold models, with himalaya fitting each fold."""
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    set_backend("torch_cuda" if dev.type == "cuda" else "torch", on_error="raise")
    x, y, xt, yt = standardise(Xtr.float(), Ytr.float(), Xte.float(), Yte.float())
    scores = []
    for train, _ in R.kfold_indices(x.shape[0], 5, True, SEED):
        index = torch.as_tensor(train, device=x.device)
        model = (RidgeCV(alphas=ALPHAS, fit_intercept=True, cv=5) if kind == "RidgeCV"
                 else KernelRidgeCV(alphas=ALPHAS, kernel="linear", fit_intercept=True, cv=5))
        model.fit(x[index], y[index])
        scores.append(r2(torch.as_tensor(model.predict(xt), device=x.device), yt))
    return torch.stack(scores).mean(0).cpu().numpy()


def run_sklearn(Xtr, Ytr, Xte, Yte) -> np.ndarray:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold

    standard = standardise(*(torch.as_tensor(a, dtype=torch.float64) for a in (Xtr, Ytr, Xte, Yte)))
    x, y, xt, yt = (a.numpy().astype(np.float32) for a in standard)  # Hoefling et al. cast to float32
    scores = []
    for train, _ in KFold(5, shuffle=True, random_state=SEED).split(x):
        model = RidgeCV(alphas=ALPHAS).fit(x[train], y[train])
        scores.append(r2(torch.tensor(model.predict(xt), dtype=torch.float64), torch.tensor(yt, dtype=torch.float64)))
    return torch.stack(scores).mean(0).numpy()


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], tuple(SIZES))
    p.add_argument("--skip", default="", help="comma-separated contenders to skip: himalaya,sklearn")
    args = p.parse_args()
    dev = common.device(args.device)
    size = SIZES[args.size]
    skip = set(filter(None, args.skip.split(",")))
    Xtr, Ytr, Xte, Yte = make_data(size, dev, args.seed)
    common.result(f"ridge: {size['n']} train + {size['n_test']} test samples, {size['p']} features -> {size['t']} "
                  f"targets, {len(ALPHAS)} alphas, 5 folds, device={common.describe(dev)}")
    R.ridge_cv(Xtr[:50, :20], Ytr[:50, :5], device=dev)  # warm-up (CUDA context, cuSOLVER)

    times: dict[str, float] = {}
    with common.timer(dev, times, "shared"):
        shared = R.ridge_cv(Xtr, Ytr, Xte, Yte, alphas=ALPHAS, random_state=SEED, device=dev)
    with common.timer(dev, times, "per-target"):
        per_target = R.ridge_cv(Xtr, Ytr, Xte, Yte, alphas=ALPHAS, random_state=SEED, device=dev,
                                alpha_per_target=True)
    common.result(f"cortexbench ridge_cv [shared alpha, float{32 if dev.type == 'cuda' else 64}]: "
                  f"{times['shared']:.3f} s, mean test R^2 {np.nanmean(shared.test_r2):.4f}")
    common.result(f"cortexbench ridge_cv [alpha per target]: {times['per-target']:.3f} s, mean test R^2 "
                  f"{np.nanmean(per_target.test_r2):.4f}")

    if "himalaya" not in skip:
        for kind in ("RidgeCV", "KernelRidgeCV"):
            with common.timer(dev, times, kind):
                scores = run_himalaya(kind, Xtr, Ytr, Xte, Yte, dev)
            common.result(f"himalaya {kind} [alpha per target, inner 5-fold CV]: {times[kind]:.3f} s, mean test R^2 "
                          f"{np.nanmean(scores):.4f} (cortexbench per-target: {np.nanmean(per_target.test_r2):.4f})")
            common.record(f"ridge {args.size} on {common.describe(dev)}: cortexbench per-target "
                          f"{times['per-target']:.2f} s vs himalaya {kind} {times[kind]:.2f} s: "
                          f"{times[kind] / times['per-target']:.1f}x (goal >= 1x); shared alpha "
                          f"{times['shared']:.2f} s: {times[kind] / times['shared']:.1f}x")
    if "sklearn" not in skip:
        t_sk = min(size["sklearn_t"], size["t"])
        cpu = [a.cpu().double().numpy() for a in (Xtr, Ytr[:, :t_sk], Xte, Yte[:, :t_sk])]
        with common.timer(torch.device("cpu"), times, "sklearn"):
            scores = run_sklearn(*cpu)
        total = times["sklearn"] * size["t"] / t_sk
        agreement = np.abs(scores - shared.test_r2[:t_sk]).max()
        common.result(f"sklearn RidgeCV [cpu, {os.cpu_count()} cores, float32, shared alpha]: {times['sklearn']:.2f} s "
                      f"for {t_sk} targets -> {total:.1f} s for {size['t']} (extrapolated); max |test R^2 difference| "
                      f"vs cortexbench shared alpha = {agreement:.1e}")
        common.record(f"ridge {args.size}: cortexbench shared alpha {times['shared']:.2f} s on {common.describe(dev)} "
                      f"vs sklearn RidgeCV ~{total:.2f} s on cpu ({os.cpu_count()} cores): "
                      f"{total / times['shared']:.1f}x (goal >= 100x)")
    common.result(f"peak GPU memory {common.peak_memory(dev)}")


if __name__ == "__main__":
    main()
