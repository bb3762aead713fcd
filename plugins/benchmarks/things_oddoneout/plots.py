"""Figures of a stored ``things.recovery`` assembly: recovery vs N, confusion matrices, accuracy-identifiability.

From the command line, for a score already in the registry::

    python -m cortexbench.plugins.benchmarks.things_oddoneout.plots MODEL things.recovery OUT_DIR [--registry PATH]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import xarray as xr


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recovery_vs_n(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Recovery accuracy against the number of training triplets, one panel per transform."""
    plt = _plt()
    transforms = list(ds["transform"].values)
    fig, axes = plt.subplots(1, len(transforms), figsize=(3.6 * len(transforms), 3.4), sharey=True,
                             constrained_layout=True, squeeze=False)
    chance = 1.0 / ds.sizes["candidate"]
    n = ds["n_train"].values
    for ax, transform in zip(axes[0], transforms):
        share = ds["recovery_accuracy"].sel(transform=transform)
        for g in ds["generator"].values:
            ax.plot(n, share.sel(generator=g).values, "-", color="0.75", lw=0.8)
        model = ds.attrs.get("model")
        if model in ds["generator"].values:
            own = share.sel(generator=model)
            err = np.stack([own - ds["recovery_ci_low"].sel(generator=model, transform=transform),
                            ds["recovery_ci_high"].sel(generator=model, transform=transform) - own])
            ax.errorbar(n, own.values, yerr=err, fmt="o-", color="C3", lw=1.4, ms=3, label=model)
        ax.plot(n, share.mean("generator").values, "s--", color="C0", lw=1.2, ms=3, label="mean over generators")
        ax.axhline(chance, color="k", ls=":", lw=0.8, label="chance")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(str(transform))
        ax.set_xlabel("training triplets N")
    axes[0][0].set_ylabel("recovery accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_confusion(ds: xr.Dataset, path: str | os.PathLike, n_train: int | None = None) -> None:
    """Share of seeds in which each candidate (columns) was recovered for each generator (rows), per transform."""
    plt = _plt()
    n_train = int(ds["n_train"].values[-1]) if n_train is None else int(n_train)
    transforms = list(ds["transform"].values)
    size = max(3.0, 0.45 * ds.sizes["candidate"] + 1.5)
    fig, axes = plt.subplots(1, len(transforms), figsize=(size * len(transforms), size), constrained_layout=True,
                             squeeze=False)
    n_seeds = ds.sizes["seed"]
    for ax, transform in zip(axes[0], transforms):
        share = ds["confusion"].sel(n_train=n_train, transform=transform).values / n_seeds
        image = ax.imshow(share, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(ds.sizes["candidate"]), [str(c) for c in ds["candidate"].values], rotation=60,
                      ha="right", fontsize=7)
        ax.set_yticks(range(ds.sizes["generator"]), [str(g) for g in ds["generator"].values], fontsize=7)
        ax.set_title(f"{transform}, N = {n_train}", fontsize=9)
        ax.set_xlabel("recovered candidate")
    axes[0][0].set_ylabel("generating model")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="share of seeds")
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_tradeoff(ds: xr.Dataset, path: str | os.PathLike, n_train: int | None = None) -> None:
    """Each generator's accuracy on human judgments (x) against how often it is recovered (y), per transform."""
    plt = _plt()
    n_train = int(ds["n_train"].values[-1]) if n_train is None else int(n_train)
    fig, ax = plt.subplots(figsize=(5.2, 4.2), constrained_layout=True)
    for i, transform in enumerate(ds["transform"].values):
        x = ds["generator_cv_accuracy"].sel(transform=transform).values
        y = ds["recovery_accuracy"].sel(transform=transform, n_train=n_train).values
        ax.scatter(x, y, color=f"C{i}", label=str(transform), s=24)
        for g, xi, yi in zip(ds["generator"].values, x, y):
            ax.annotate(str(g).split("/")[-1], (xi, yi), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.axhline(1.0 / ds.sizes["candidate"], color="k", ls=":", lw=0.8, label="chance recovery")
    ax.set_xlabel("cross-validated accuracy on human judgments")
    ax.set_ylabel(f"recovery accuracy (N = {n_train})")
    ax.set_title("accuracy vs identifiability", fontsize=10)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_recovery(ds: xr.Dataset, folder: str | os.PathLike) -> list[Path]:
    """All three figures into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "recovery_vs_n.png", folder / "confusion.png", folder / "accuracy_vs_identifiability.png"]
    plot_recovery_vs_n(ds, paths[0])
    plot_confusion(ds, paths[1])
    plot_tradeoff(ds, paths[2])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Plot a stored THINGS model-recovery score")
    parser.add_argument("model")
    parser.add_argument("benchmark")
    parser.add_argument("folder")
    parser.add_argument("--registry")
    args = parser.parse_args(argv)
    from cortexbench.registry import Registry

    ds = Registry(args.registry).get(args.model, args.benchmark).load()
    for path in plot_recovery(ds, args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
