"""Plots of stored score assemblies (matplotlib, headless)."""
from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np


def benchmark_plot(benchmark: str, plugins=None) -> Callable[[Any, Any], Any] | None:
    """The plot function a benchmark plugin declares (``BenchmarkSpec.plot``), loaded lazily; None if it has none.

    A benchmark that is no longer installed gets the generic plot, so stored scores stay viewable.
    """
    from .errors import InputError, UnknownIdentifierError

    if plugins is None:
        from .plugin_manager import get_plugin_manager

        plugins = get_plugin_manager()
    try:
        target = plugins.benchmark_spec(benchmark).plot
    except UnknownIdentifierError:
        return None
    if target is None or callable(target):
        return target
    module, _, name = str(target).partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise InputError(f"benchmark {benchmark!r} declares plot={target!r}, which cannot be loaded ({err}); "
                         "expected 'package.module:function'") from None


def plot_stored(ds, path: str | os.PathLike, plugins=None) -> None:
    """``cortexbench show --plot``: the benchmark's own plot when it declares one, else :func:`plot_assembly`."""
    plot = benchmark_plot(str(ds.attrs.get("benchmark", "")), plugins)
    (plot or plot_assembly)(ds, path)


def plot_assembly(ds, path: str | os.PathLike) -> None:
    """Per-layer profile: ceiled score (raw averaged over every other dimension / ceiling) against depth.

    Assemblies without a ``layer`` dimension get a bar chart over the first dimension of ``raw``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = ds["raw"]
    ceiling = float(ds["ceiling"])
    scale = ceiling if math.isfinite(ceiling) and ceiling > 0 else 1.0
    fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
    title = f"{ds.attrs.get('model')} on {ds.attrs.get('benchmark')}"
    if "layer" in raw.dims:
        others = [d for d in raw.dims if d != "layer"]
        mean = raw.mean(others) / scale
        x = raw["depth"].values if "depth" in raw.coords else np.arange(raw.sizes["layer"])
        if others:
            per = (raw / scale).stack(rest=others).transpose("layer", "rest").values
            ax.plot(x, per, color="0.8", lw=0.8, zorder=1)
        ax.plot(x, mean.values, "o-", color="C0", zorder=2, label="mean over " + (", ".join(others) or "layers"))
        best = int(np.nanargmax(mean.values))
        ax.annotate(str(raw["layer"].values[best]), (x[best], mean.values[best]), textcoords="offset points",
                    xytext=(4, 6), fontsize=8)
        ax.set_xlabel("normalized depth" if "depth" in raw.coords else "layer index")
        ax.axhline(1.0 if scale != 1.0 else ceiling, color="k", ls="--", lw=0.8, label="noise ceiling")
        ax.axhline(float(ds["score"]), color="C3", ls=":", lw=1,
                   label=f"headline score {float(ds['score']):.3f} ± {float(ds['score_error']):.3f}")
    else:
        first = raw.dims[0]
        values = raw.mean([d for d in raw.dims if d != first]) / scale
        ax.bar(np.arange(values.sizes[first]), values.values, color="C0")
        ax.set_xticks(np.arange(values.sizes[first]), [str(v) for v in raw[first].values], rotation=60, fontsize=7)
    ax.set_ylabel("score / ceiling" if scale != 1.0 else "raw score")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=130)
    plt.close(fig)
