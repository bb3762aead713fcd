"""Shen et al.'s summaries of a stored NSD CKA assembly (``raw``: layer x region x subject x sigma).

* Depth bins (dimension ``bin`` of the summaries): each layer's ``depth_bin`` (``floor(8 i / L)`` for layer i of L, 0-based, so bins 0..7); the CKA of the
  layers that share a bin is **averaged** to one value per (bin, region, subject, sigma).
* Headline: per subject, the mean of the top 5 % of regions (``ceil(0.05 R)``, 9 of 180) at bin index 6 (the 7th of
  8 bins, relative depth [0.75, 0.875)) and sigma 36, then the mean over subjects. A model without a layer in bin 6
  uses the nearest bin it has (ties: the deeper one); the assembly records the bin used.
* Yeo-7 network summary: the bin-averaged CKA averaged over the regions of each network (Shen et al.'s HCP-to-Yeo-7
  assignment) and over subjects, per depth bin.
* Sigma sensitivity: per region, CKA at sigma 68 minus CKA at sigma 28 (bin 6, averaged over subjects).
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

from cortexbench.errors import InputError

from . import regions as region_tables

HEADLINE_SIGMA = 36.0
HEADLINE_BIN = 6
TOP_FRACTION = 0.05
N_BINS = 8
SENSITIVITY_SIGMAS = (28.0, 68.0)


def _raw(data: xr.Dataset | xr.DataArray) -> xr.DataArray:
    raw = data["raw"] if isinstance(data, xr.Dataset) else data
    missing = [d for d in ("layer", "region", "subject", "sigma") if d not in raw.dims]
    if missing or "depth_bin" not in raw.coords:
        raise InputError(f"expected an NSD CKA assembly with raw dims (layer, region, subject, sigma) and a depth_bin "
                         f"coordinate; got dims {raw.dims} (missing {missing})")
    return raw


def top_k(n_regions: int, fraction: float = TOP_FRACTION) -> int:
    """How many regions make the top ``fraction`` (at least 1): ``ceil(fraction * R)``, 9 of 180 at 5 %."""
    if not 0 < fraction <= 1:
        raise InputError(f"top_fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(round(fraction * n_regions, 9)))


def top_mean(values: xr.DataArray, fraction: float = TOP_FRACTION, dim: str = "region") -> xr.DataArray:
    """Mean of the ``top_k`` largest values along ``dim``."""
    k = top_k(values.sizes[dim], fraction)
    return values.reduce(lambda a, axis: np.sort(np.moveaxis(a, axis, -1), axis=-1)[..., -k:].mean(-1), dim=dim)


def _networks(values: xr.DataArray) -> np.ndarray:
    """The stored per-region ``network`` coordinate, or the HCP-MMP1 assignment by name when absent."""
    if "network" in values.coords:
        return np.asarray(values["network"].values).astype(str)
    return np.array(region_tables.yeo7_networks(values["region"].values))


def by_depth_bin(data: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """CKA averaged over the layers of each depth bin: ``(bin, region, subject, sigma)``.

    The dimension is ``bin`` because ``depth_bin`` is already the per-layer coordinate of ``raw``.
    """
    raw = _raw(data)
    out = raw.groupby("depth_bin").mean("layer").rename(depth_bin="bin")
    return out.drop_vars("depth", errors="ignore").transpose("bin", ...)


def nearest_bin(available: Sequence[int], wanted: int = HEADLINE_BIN) -> int:
    """``wanted`` if present, else the nearest present bin (ties go to the deeper bin)."""
    available = sorted(int(b) for b in available)
    if not available:
        raise InputError("no depth bins: the assembly has no layers")
    return min(available, key=lambda b: (abs(b - wanted), -b))


def select_sigma(values: xr.DataArray, sigma: float) -> xr.DataArray:
    sigmas = [float(s) for s in values["sigma"].values]
    if not any(math.isclose(float(sigma), s) for s in sigmas):
        raise InputError(f"sigma {sigma} was not computed; the assembly has sigmas {sigmas}")
    return values.sel(sigma=next(s for s in sigmas if math.isclose(float(sigma), s)))


def depth_profile(data: xr.Dataset | xr.DataArray, fraction: float = TOP_FRACTION) -> xr.DataArray:
    """Top-``fraction`` mean over regions of the bin-averaged CKA: ``(bin, subject, sigma)``."""
    return top_mean(by_depth_bin(data), fraction)


def headline(data: xr.Dataset | xr.DataArray, *, sigma: float = HEADLINE_SIGMA, depth_bin: int = HEADLINE_BIN,
             fraction: float = TOP_FRACTION) -> dict:
    """The per-model score with its per-subject values, SEM, t-based 95 % CI, bin used and top regions."""
    from scipy import stats

    binned = select_sigma(by_depth_bin(data), sigma)
    used = nearest_bin(binned["bin"].values, depth_bin)
    at_bin = binned.sel(bin=used, drop=True)                                  # (region, subject)
    per_subject = top_mean(at_bin, fraction)                                  # (subject,)
    values = per_subject.values.astype(float)
    n = values.size
    sem = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * sem) if n > 1 else math.nan
    k = top_k(at_bin.sizes["region"], fraction)
    order = np.argsort(-at_bin.transpose("subject", "region").values, axis=1)[:, :k]
    regions = at_bin["region"].values
    return {"score": float(values.mean()), "score_error": sem, "ci_low": float(values.mean() - half),
            "ci_high": float(values.mean() + half), "per_subject": per_subject, "depth_bin": int(used), "k": k,
            "top_regions": xr.DataArray(regions[order].astype(str), dims=("subject", "rank"),
                                        coords={"subject": at_bin["subject"].values, "rank": np.arange(k)})}


def network_summary(data: xr.Dataset | xr.DataArray, *, sigma: float = HEADLINE_SIGMA) -> xr.DataArray:
    """Mean bin-averaged CKA of each Yeo-7 network's regions (and over subjects): ``(network, bin)``."""
    binned = select_sigma(by_depth_bin(data), sigma).mean("subject")
    networks = _networks(binned)
    present = [n for n in region_tables.YEO7 if (networks == n).any()]
    if not present:
        raise InputError("none of the assembly's regions belongs to a Yeo-7 network (the network summary needs "
                         "HCP-MMP1 regions)")
    rows = [binned.isel(region=np.flatnonzero(networks == n)).mean("region") for n in present]
    out = xr.concat(rows, dim="network").assign_coords(network=present)
    out = out.assign_coords(n_regions=("network", [int((networks == n).sum()) for n in present]))
    out.attrs.update(description=f"bin-averaged RBF CKA (sigma {sigma}) averaged over each network's regions and "
                                 "over subjects", sigma=float(sigma))
    return out.transpose("network", "bin")


def sigma_sensitivity(data: xr.Dataset | xr.DataArray, *, low: float = SENSITIVITY_SIGMAS[0],
                      high: float = SENSITIVITY_SIGMAS[1], depth_bin: int = HEADLINE_BIN) -> xr.DataArray:
    """CKA(sigma=high) - CKA(sigma=low) per region at a depth bin, averaged over subjects: ``(region,)``."""
    binned = by_depth_bin(data)
    used = nearest_bin(binned["bin"].values, depth_bin)
    at_bin = binned.sel(bin=used, drop=True).mean("subject")
    delta = select_sigma(at_bin, high) - select_sigma(at_bin, low)
    delta = delta.drop_vars("sigma", errors="ignore")
    delta = delta.assign_coords(network=("region", _networks(delta)))
    delta.attrs.update(description=f"CKA(sigma={high}) - CKA(sigma={low}) at depth bin {used}, mean over subjects",
                       depth_bin=int(used), sigma_low=float(low), sigma_high=float(high))
    return delta


# --- plots -------------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(data) -> str:
    attrs = data.attrs if isinstance(data, xr.Dataset) else {}
    return f"{attrs.get('model', '')} on {attrs.get('benchmark', '')}".strip()


def plot_network_summary(data: xr.Dataset, path: str | os.PathLike, *, sigma: float = HEADLINE_SIGMA) -> xr.DataArray:
    """Lines: each Yeo-7 network's mean CKA against depth bin."""
    summary = network_summary(data, sigma=sigma)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for network in summary["network"].values:
        row = summary.sel(network=network)
        ax.plot(row["bin"].values, row.values, "o-", label=f"{network} ({int(row['n_regions'])})")
    ax.set_xlabel("depth bin (0-7, floor(8 i / L))")
    ax.set_ylabel(f"RBF CKA (sigma {sigma:g})")
    ax.set_title(f"Yeo-7 networks: {_title(data)}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return summary


def plot_sigma_sensitivity(data: xr.Dataset, path: str | os.PathLike, **kwargs) -> xr.DataArray:
    """Bars: per region (sorted) the change of CKA from sigma 28 to 68, coloured by Yeo-7 network."""
    delta = sigma_sensitivity(data, **kwargs)
    order = np.argsort(-delta.values)
    plt = _pyplot()
    networks = list(dict.fromkeys([*region_tables.YEO7, ""]))
    colors = {n: plt.get_cmap("tab10")(i) for i, n in enumerate(networks)}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.06 * delta.size + 3), 3.8), constrained_layout=True)
    ax.bar(np.arange(delta.size), delta.values[order],
           color=[colors[str(n)] for n in delta["network"].values[order]])
    if delta.size <= 40:
        ax.set_xticks(np.arange(delta.size), delta["region"].values[order], rotation=90, fontsize=6)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[n]) for n in networks
               if (delta["network"].values == n).any()]
    labels = [n or "no Yeo-7 network" for n in networks if (delta["network"].values == n).any()]
    ax.legend(handles, labels, fontsize=7)
    ax.set_ylabel(f"CKA(σ={delta.attrs['sigma_high']:g}) - CKA(σ={delta.attrs['sigma_low']:g})")
    ax.set_title(f"sigma sensitivity at depth bin {delta.attrs['depth_bin']}: {_title(data)}", fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return delta


def plot_region_depth(data: xr.Dataset, path: str | os.PathLike, *, sigma: float = HEADLINE_SIGMA,
                      fraction: float = TOP_FRACTION) -> None:
    """Region x depth-bin heatmap of the bin-averaged CKA (subject mean), beside the top-5 % depth profile."""
    binned = select_sigma(by_depth_bin(data), sigma)
    mean = binned.mean("subject").transpose("region", "bin")
    profile = select_sigma(depth_profile(data, fraction), sigma)                  # (depth_bin, subject)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, max(3.5, 0.04 * mean.sizes["region"] + 2)),
                                      gridspec_kw={"width_ratios": [2, 1]}, constrained_layout=True)
    image = left.imshow(mean.values, aspect="auto", cmap="viridis", interpolation="nearest")
    left.set_xticks(np.arange(mean.sizes["bin"]), mean["bin"].values)
    if mean.sizes["region"] <= 60:
        left.set_yticks(np.arange(mean.sizes["region"]), mean["region"].values, fontsize=6)
    left.set_xlabel("depth bin")
    left.set_ylabel("region")
    fig.colorbar(image, ax=left, label=f"RBF CKA (sigma {sigma:g})")
    bins = profile["bin"].values
    for subject in profile["subject"].values:
        right.plot(bins, profile.sel(subject=subject).values, color="0.75", lw=0.8)
    right.plot(bins, profile.mean("subject").values, "o-", color="C0", label="mean over subjects")
    right.set_xlabel("depth bin")
    right.set_ylabel(f"mean of top {fraction:.0%} regions")
    right.legend(fontsize=7)
    fig.suptitle(f"region x depth profile: {_title(data)}", fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def depth_curves(data: xr.Dataset, *, sigma: float = HEADLINE_SIGMA, fraction: float = TOP_FRACTION,
                 max_groups: int = 8) -> dict[str, xr.DataArray]:
    """What :func:`plot_depth_bins` draws: subject means and SEMs over depth bins.

    ``profile_mean``/``profile_sem`` ``(bin, sigma)``: the top-``fraction`` depth profile; ``group_mean``/``group_sem``
    ``(group, bin)`` at ``sigma``: per Yeo-7 network for HCP-MMP1 regions, else per region (the ``max_groups``
    regions best at the headline bin when there are more).
    """
    def sem(values: xr.DataArray) -> xr.DataArray:
        n = values.sizes["subject"]
        return values.std("subject", ddof=1) / math.sqrt(n) if n > 1 else xr.full_like(values.mean("subject"), np.nan)

    profile = depth_profile(data, fraction)                                      # (bin, subject, sigma)
    binned = select_sigma(by_depth_bin(data), sigma)                            # (bin, region, subject)
    networks = _networks(binned)
    if (networks != "").all():
        present = [n for n in region_tables.YEO7 if (networks == n).any()]
        groups = xr.concat([binned.isel(region=np.flatnonzero(networks == n)).mean("region") for n in present],
                           dim="group").assign_coords(group=present)
    else:
        at = binned.sel(bin=nearest_bin(binned["bin"].values)).mean("subject")
        keep = np.argsort(-at.values)[:max_groups]
        groups = binned.isel(region=keep).rename(region="group").drop_vars("network", errors="ignore")
    group_mean = groups.mean("subject").transpose("group", "bin")
    group_mean.attrs["grouping"] = "Yeo-7 network" if (networks != "").all() else "region"
    return {"profile_mean": profile.mean("subject"), "profile_sem": sem(profile), "group_mean": group_mean,
            "group_sem": sem(groups).transpose("group", "bin")}


def plot_depth_bins(data: xr.Dataset, path: str | os.PathLike, *,
                    sigma: float | None = None) -> dict[str, xr.DataArray]:
    """``cortexbench show MODEL nsd... --plot``: CKA against depth bin, with SEM-over-subjects error bars.

    Left: the top-5 % depth profile for every sigma (the headline sigma bold, with error bars), the headline bin
    shaded and the ceiling dashed. Right: at the headline sigma, one curve per Yeo-7 network (or per region for ROI
    layouts). Brain-to-brain assemblies (no layers) get the generic plot.
    """
    if "layer" not in data["raw"].dims:
        from cortexbench.plots import plot_assembly

        plot_assembly(data, path)
        return {}
    sigma = float(data.attrs.get("headline_sigma", HEADLINE_SIGMA)) if sigma is None else float(sigma)
    fraction = float(data.attrs.get("top_fraction", TOP_FRACTION))
    curves = depth_curves(data, sigma=sigma, fraction=fraction)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    mean, sem = curves["profile_mean"], curves["profile_sem"]
    sigmas = [float(s) for s in mean["sigma"].values]
    cmap = plt.get_cmap("viridis")
    for i, s in enumerate(sigmas):
        row = mean.sel(sigma=s)
        if math.isclose(s, sigma):
            left.errorbar(row["bin"].values, row.values, yerr=sem.sel(sigma=s).values, fmt="o-", color="C3", lw=2,
                          capsize=3, zorder=3, label=f"σ={s:g} (headline) ± SEM")
        else:
            left.plot(row["bin"].values, row.values, color=cmap(i / max(1, len(sigmas) - 1)), lw=0.8, alpha=0.8,
                      label=f"σ={s:g}" if i in (0, len(sigmas) - 1) else None)
    used = int(data.attrs.get("headline_depth_bin", HEADLINE_BIN))
    for ax in (left, right):
        ax.axvspan(used - 0.4, used + 0.4, color="0.9", zorder=0)
        ax.set_xlabel("depth bin (floor(8 i / L), heads left out)")
        ax.set_xticks(range(N_BINS))
    ceiling = float(data["ceiling"]) if "ceiling" in data else math.nan
    if math.isfinite(ceiling):
        left.axhline(ceiling, color="k", ls="--", lw=0.8, label=f"inter-subject ceiling {ceiling:.3f}")
    left.set_ylabel(f"RBF CKA, mean of top {fraction:.0%} regions")
    left.set_title(f"depth profile, score {float(data['score']):.3f} (bin {used}, σ={sigma:g})", fontsize=9)
    left.legend(fontsize=7)
    gm, gs = curves["group_mean"], curves["group_sem"]
    for i, group in enumerate(gm["group"].values):
        right.errorbar(gm["bin"].values + 0.04 * (i - gm.sizes["group"] / 2), gm.sel(group=group).values,
                       yerr=gs.sel(group=group).values, fmt="o-", ms=3, lw=1, capsize=2, label=str(group))
    right.set_ylabel(f"RBF CKA (σ={sigma:g}), mean over regions ± SEM")
    right.set_title(f"per {gm.attrs['grouping']}", fontsize=9)
    right.legend(fontsize=7, ncol=2)
    fig.suptitle(_title(data), fontsize=10)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return curves
