"""The authors' released scoresheets import into the registry and their APA matches an independent computation.

The independent side reads the raw CSVs with the csv module and computes ceilings, patterns and APS with plain
loops and ``numpy.corrcoef``, following the definitions in Höfling et al.'s code (PairwiseBrainBrainAlignmentPatterns,
ModelBrainAlignmentPatterns, aggregate_results), not cortexbench's vectorized implementation.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from cortexbench import alignment_patterns as apa
from cortexbench.cli import main
from cortexbench.plugins.benchmarks.bold_moments import released
from cortexbench.plugins.benchmarks.bold_moments.protocol import REGIONS


@pytest.fixture(scope="module")
def release(shared_data) -> Path:
    return shared_data / "apa_scoresheets" / "precomputed_results"


def _rows(release: Path, kind: str):
    for path in sorted((release / kind).glob("*/scoresheets/scores_rsa_sub-*.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["roi"] in REGIONS and (kind == "benchmark" or row["layer"] in REGIONS):
                    yield row


def _independent(release: Path):
    """Lower ceilings, normalized pairwise patterns and brain-brain APS from the CSVs, by loops."""
    pair = {}
    for row in _rows(release, "pairwise"):
        pair[(row["model"], row["layer"], row["roi"], row["subject"], row["split"])] = float(row["score"])
    lower = defaultdict(list)
    for (src, sroi, troi, tgt, split), score in pair.items():
        if sroi == troi:
            lower[(troi, tgt, split)].append(score)
    lower = {k: float(np.mean(v)) for k, v in lower.items()}
    sources = defaultdict(set)
    for (src, _, _, tgt, split) in pair:
        if split == "test":
            sources[tgt].add(src)
    subjects = sorted(sources)

    def pattern(src, sroi, tgt, norm=True):
        return np.array([pair[(src, sroi, r, tgt, "test")] / (lower[(r, tgt, "test")] if norm else 1.0)
                         for r in REGIONS])

    aps = {}
    for s in subjects:
        for r in REGIONS:
            reference = np.mean([pattern(p, r, t) for t in subjects if t != s for p in sources[t] if p != s], 0)
            aps[(r, s)] = np.mean([np.corrcoef(reference, pattern(p, r, s))[0, 1] for p in sources[s]])
    return lower, pattern, sources, subjects, aps


def test_released_subset_imports_and_brain_aps_matches_independent(release, registry):
    stored = released.import_release(release, registry=registry, n_bootstrap=50)
    assert {(m, b) for m, b, _ in stored} == {
        ("brain-to-brain", "bmd-released.rsa"), ("v_jepa/vjepa2_vit_giant", "bmd-released.rsa"),
        ("vissl/simclr_resnet101_1000epochs", "bmd-released.rsa")}
    models, brain = apa.load_from_registry(registry, "bmd-released.rsa")
    assert brain.attrs["n_pairs"] == 50  # 5 partners x 10 target subjects, as the paper
    result = apa.analyze(models, brain, outcome_kind="score_norm_lower", n_bootstrap=50)

    lower, pattern, sources, subjects, aps = _independent(release)
    assert subjects == list(result["subject"].values) and len(subjects) == 10
    for (region, subject, split), value in lower.items():
        assert float(result["lower_ceiling"].sel(region=region, subject=subject, split=split)) == pytest.approx(
            value, abs=1e-12)
    for (region, subject), value in aps.items():
        assert float(result["brain_aps"].sel(region=region, subject=subject)) == pytest.approx(value, abs=1e-10)
    # brains align with brains: every region's subjects share its pattern (the paper's premise)
    assert float(result["brain_aps_mean"].min()) > 0.5

    # model-brain APS of the SimCLR run (10 subjects): best layer on the normalized train mean, mean of correlations
    simclr = "vissl/simclr_resnet101_1000epochs"
    table = {}
    for row in _rows(release, "benchmark"):
        if row["model"] == simclr:
            table[(row["layer"], row["roi"], row["subject"], row["split"])] = float(row["score"])
    layers = list(dict.fromkeys(k[0] for k in table))
    for region in ("V1", "MT", "FFC"):
        train_means = [np.mean([table[(layer, region, s, "train")] / lower[(region, s, "train")] for s in subjects])
                       for layer in layers]
        best = layers[int(np.argmax(train_means))]
        assert str(result["best_layer"].sel(model=simclr, region=region).values) == best
        for subject in subjects[:3]:
            model_pattern = np.array([table[(best, r, subject, "test")] / lower[(r, subject, "test")]
                                      for r in REGIONS])
            expected = np.mean([np.corrcoef(model_pattern, pattern(p, region, subject))[0, 1]
                                for p in sources[subject]])
            got = float(result["aps"].sel(model=simclr, region=region, subject=subject))
            assert got == pytest.approx(expected, abs=1e-10)
        score = np.mean([table[(best, region, s, "test")] / lower[(region, s, "test")] for s in subjects])
        assert float(result["score_mean"].sel(model=simclr, region=region)) == pytest.approx(score, abs=1e-12)


def test_bootstrap_and_equivalence_follow_their_definition(release, registry):
    released.import_release(release, registry=registry, n_bootstrap=20)
    models, brain = apa.load_from_registry(registry, "bmd-released.rsa")
    result = apa.analyze(models, brain, n_bootstrap=200)
    simclr = "vissl/simclr_resnet101_1000epochs"
    per_subject = result["score"].sel(model=simclr, region="V4").values
    boot = [per_subject[np.random.default_rng(b).choice(10, 10, replace=True)].mean() for b in range(200)]
    assert float(result["score_ci_low"].sel(model=simclr, region="V4")) == pytest.approx(np.percentile(boot, 2.5))
    assert float(result["score_ci_high"].sel(model=simclr, region="V4")) == pytest.approx(np.percentile(boot, 97.5))
    for region in result["region"].values:
        r = result.sel(region=region)
        eligible = r["eligible"].values                        # models with >= 2 subjects (vjepa2 has 1 here)
        assert eligible.tolist() == (r["n_subjects"].values >= 2).tolist()
        best = int(np.nanargmax(np.where(eligible, r["score_mean"].values, np.nan)))
        expected = eligible & (r["score_mean"].values >= r["score_ci_low"].values[best])
        np.testing.assert_array_equal(r["equivalent_score"].values, expected)
        assert bool(r["is_best_score"].values[best])
        np.testing.assert_array_equal(r["equivalent_both"].values,
                                      r["equivalent_score"].values & r["equivalent_aps"].values)


def test_raw_outcome_and_cli(release, tmp_path, capsys):
    registry = tmp_path / "registry"
    assert main(["import-apa", str(release), "--registry", str(registry)]) == 0
    assert "3 assemblies imported" in capsys.readouterr().out
    out = tmp_path / "apa.nc"
    assert main(["apa", "bmd-released.rsa", "--registry", str(registry), "--outcome", "score", "--n-bootstrap",
                 "20", "--plot", str(tmp_path / "plots"), "--output", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 * len(REGIONS) and {r["region"] for r in rows} == set(REGIONS)
    assert (tmp_path / "plots" / "alignment_patterns.png").stat().st_size > 10_000
    assert (tmp_path / "plots" / "score_vs_aps.png").stat().st_size > 10_000
    import xarray as xr

    with xr.open_dataset(out, engine="h5netcdf") as ds:
        lower, pattern, sources, subjects, _ = _independent(release)
        # with raw scores the brain patterns are not divided by the ceiling
        s, r = "sub-04", "MT"
        others = [pattern(p, r, t, norm=False) for t in subjects if t != s for p in sources[t] if p != s]
        expected = np.mean([np.corrcoef(np.mean(others, 0), pattern(p, r, s, norm=False))[0, 1] for p in sources[s]])
        assert float(ds["brain_aps"].sel(region=r, subject=s)) == pytest.approx(expected, abs=1e-10)
        assert ds.attrs["outcome"] == "score"
