"""Leaderboard: models x benchmarks from the registry, keeping "scored", "failed" and "never run" apart.

A model's rank uses the mean of its ceiled scores over the benchmarks it was scored on, reported with how many
benchmarks that mean covers; a failure or a missing run is never counted as a zero (Brain-Score's trap). Scores
without a ceiling (a benchmark that reports raw values, e.g. a behavioural accuracy) are shown, marked ``raw``,
but never averaged with ceiled ones: they live on another scale. Only the default variant (the plugins' default
options) of each pair is ranked, and the brain-to-brain ceilings are not models.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .store import DEFAULT_VARIANT, Registry


@dataclass(frozen=True)
class Cell:
    state: str  # "scored" | "failed" | "never run"
    score: float | None = None
    error: float | None = None
    ceiled: bool = True

    @property
    def ranked(self) -> bool:
        """Counts towards the mean: a finite, ceiled score."""
        return self.state == "scored" and self.ceiled and self.score is not None and math.isfinite(self.score)


@dataclass(frozen=True)
class Leaderboard:
    models: list[str]
    benchmarks: list[str]
    cells: dict[tuple[str, str], Cell]

    def mean(self, model: str) -> tuple[float, int]:
        values = [c.score for b in self.benchmarks if (c := self.cells[(model, b)]).ranked]
        return (sum(values) / len(values) if values else float("nan")), len(values)

    def rows(self) -> list[dict[str, object]]:
        out = []
        for model in self.models:
            mean, count = self.mean(model)
            row: dict[str, object] = {"model": model, "mean": None if math.isnan(mean) else round(mean, 4),
                                      "coverage": f"{count}/{len(self.benchmarks)}"}
            for benchmark in self.benchmarks:
                cell = self.cells[(model, benchmark)]
                row[benchmark] = (f"{cell.score:.3f}±{cell.error:.3f}{'' if cell.ceiled else ' raw'}"
                                  if cell.state == "scored" else cell.state)
            out.append(row)
        return out


def build(registry: Registry, benchmarks: list[str] | None = None, models: list[str] | None = None) -> Leaderboard:
    from cortexbench.alignment_patterns import BRAIN_MODEL

    rows = [r for r in registry.scores(variant=DEFAULT_VARIANT) if r.model != BRAIN_MODEL]
    benchmarks = benchmarks or sorted({r.benchmark for r in rows})
    models = models or sorted({r.model for r in rows if r.benchmark in benchmarks})
    cells: dict[tuple[str, str], Cell] = {(m, b): Cell("never run") for m in models for b in benchmarks}
    for row in sorted(rows, key=lambda r: r.updated_at):  # newest version of each pair wins
        if (row.model, row.benchmark) in cells:
            ceiled = row.ceiling is not None and math.isfinite(row.ceiling)
            cells[(row.model, row.benchmark)] = Cell(row.state, row.score, row.score_error, ceiled)
    board = Leaderboard(models, benchmarks, cells)
    ranked = sorted(models, key=lambda m: (-(board.mean(m)[0]) if not math.isnan(board.mean(m)[0]) else math.inf, m))
    return Leaderboard(ranked, benchmarks, cells)


def plot(board: Leaderboard, path: str | os.PathLike) -> None:
    """Heatmap of ceiled scores; grey = never run, a cross = failed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.full((len(board.models), len(board.benchmarks)), np.nan)
    for i, model in enumerate(board.models):
        for j, benchmark in enumerate(board.benchmarks):
            cell = board.cells[(model, benchmark)]
            if cell.ranked:
                values[i, j] = cell.score
    height = 1.2 + 0.35 * len(board.models)
    fig, ax = plt.subplots(figsize=(2.2 + 1.1 * len(board.benchmarks), height), constrained_layout=True)
    ax.set_facecolor("0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    for i, model in enumerate(board.models):
        for j, benchmark in enumerate(board.benchmarks):
            cell = board.cells[(model, benchmark)]
            if cell.state == "failed":
                ax.text(j, i, "×", ha="center", va="center", color="crimson", fontsize=12)
            elif cell.state == "scored" and not cell.ceiled and cell.score is not None:
                ax.text(j, i, f"{cell.score:.2f}\nraw", ha="center", va="center", fontsize=6, color="0.3")
            elif not np.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] < np.nanmean(values) else "black")
    ax.set_xticks(range(len(board.benchmarks)), board.benchmarks, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(board.models)), board.models, fontsize=8)
    fig.colorbar(image, ax=ax, label="ceiled score")
    ax.set_title("cortexbench leaderboard (grey: never run, ×: failed, raw: no ceiling, not ranked)", fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)
