"""Noise ceiling (against an explicit leave-one-response-out loop), binomial intervals, temperature calibration."""
import numpy as np
import pytest
from scipy.stats import beta

from cortexbench.errors import InputError
from cortexbench.plugins.benchmarks.things_oddoneout.calibration import calibrate_temperature
from cortexbench.plugins.benchmarks.things_oddoneout.human import load_human
from cortexbench.plugins.benchmarks.things_oddoneout.noise_ceiling import (binomial_interval,
                                                                           ceiled_accuracy_bootstrap,
                                                                           loo_accuracy_per_triplet, loo_ceiling)


def _loo_by_hand(responses: list[int]) -> float:
    """Hold out each response, predict it by the others' majority (ties shared), average."""
    hits = []
    for i, held in enumerate(responses):
        rest = np.bincount(np.delete(responses, i), minlength=3)
        winners = np.flatnonzero(rest == rest.max())
        hits.append((held in winners) / len(winners))
    return float(np.mean(hits))


def test_issue_example():
    assert loo_ceiling([[10, 2, 3], [5, 5, 0], [7, 3, 0]]) == pytest.approx(0.455556, abs=1e-6)


def test_vectorised_ceiling_equals_the_explicit_loop():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 6, size=(200, 3))
    expected = [_loo_by_hand(np.repeat(np.arange(3), c)) if c.sum() >= 2 else np.nan for c in counts]
    np.testing.assert_allclose(loo_accuracy_per_triplet(counts), expected, atol=1e-12)
    assert np.isnan(loo_accuracy_per_triplet([[1, 0, 0]])[0])


def test_ceiling_of_the_real_repeated_triplets(shared_data):
    table = np.loadtxt(shared_data / "things" / "vice" / "test_triplets.csv", dtype=int)
    by_triplet: dict[tuple, list[int]] = {}
    for row in table:
        objects = tuple(row[:3])
        odd = objects[row[3] - 1]
        key = tuple(sorted(objects))
        by_triplet.setdefault(key, []).append(key.index(odd))
    expected = np.mean([_loo_by_hand(r) for r in by_triplet.values() if len(r) >= 2])
    human = load_human(1854)
    assert len(by_triplet) == 1000
    assert human.ceiling == pytest.approx(expected, abs=1e-12)
    assert 0.6 < human.ceiling < 0.7                     # SOURCE.md: leave-one-out majority predictor 64.4 %


def test_binomial_interval_is_clopper_pearson():
    for k, n in ((0, 10), (7, 10), (12713, 20000)):
        low, high = binomial_interval(k, n)
        assert low == pytest.approx(beta.ppf(0.025, k, n - k + 1) if k else 0.0, abs=1e-9)
        assert high == pytest.approx(beta.ppf(0.975, k + 1, n - k) if k < n else 1.0, abs=1e-9)


def test_temperature_hits_the_target_expected_accuracy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 3)) * 4.0
    weights = rng.integers(1, 20, size=500).astype(float)
    for target in (0.45, 0.678, 0.9):
        t = calibrate_temperature(logits, weights, target)
        z = logits / t
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        assert np.sum(p.max(axis=1) * weights) / weights.sum() == pytest.approx(target, abs=1e-9)
    with pytest.raises(InputError, match="equal similarities"):
        calibrate_temperature(np.zeros((4, 3)), np.ones(4), 0.6)
    with pytest.raises(InputError, match="ranges only"):
        calibrate_temperature(logits, weights, 0.2)


def _bootstrap_world(n: int, rng: np.random.Generator, repeats: int = 6):
    """Triplets with true choice probabilities p, a model's fixed pick per triplet, and ``repeats`` judgments each."""
    p = rng.dirichlet([0.6, 0.6, 0.6], size=n)
    pick = np.argmax(np.log(p) + 0.7 * rng.gumbel(size=(n, 3)), axis=1)
    counts = np.stack([rng.multinomial(repeats, q) for q in p]).astype(float)
    return p, pick, counts


def test_triplet_bootstrap_covers_the_planted_ceiled_accuracy():
    rng = np.random.default_rng(0)
    p, pick, counts = _bootstrap_world(200_000, rng)            # the population: expected accuracy / ceiling
    truth = p[np.arange(len(p)), pick].mean() / np.nanmean(loo_accuracy_per_triplet(counts))
    n, experiments, covered, covered_binomial = 120, 300, 0, 0
    for e in range(experiments):
        _, pick, counts = _bootstrap_world(n, rng)
        correct = counts[np.arange(n), pick]
        result = ceiled_accuracy_bootstrap(correct, counts, n_bootstrap=400, random_state=e)
        assert result.estimate == pytest.approx(correct.sum() / counts.sum() / loo_ceiling(counts))
        covered += result.low <= truth <= result.high
        low, high = binomial_interval(correct.sum(), counts.sum())      # judgments as independent, ceiling fixed
        covered_binomial += low / loo_ceiling(counts) <= truth <= high / loo_ceiling(counts)
    assert 0.90 <= covered / experiments <= 0.99                  # nominal 95 %
    assert covered_binomial / experiments < 0.88                  # the judgment-level interval is too narrow


def test_triplet_bootstrap_with_a_fixed_ceiling_and_bad_input():
    counts = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    correct = np.array([1.0, 0.0, 1.0, 1.0])
    result = ceiled_accuracy_bootstrap(correct, counts, 0.5, n_bootstrap=300)
    assert result.estimate == pytest.approx(0.75 / 0.5)
    assert 0.0 <= result.low <= result.estimate <= result.high <= 2.0
    with pytest.raises(InputError, match="no repeated judgments"):
        ceiled_accuracy_bootstrap(correct, counts)
