"""Every ceiling and statistic on a planted case whose answer is known in closed form."""
import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.ceilings import reliability, resampling, subjects
from cortexbench.plugins.metrics.cka import functional as cka


def test_spearman_brown_formula():
    assert reliability.spearman_brown(0.5) == pytest.approx(2 / 3)
    assert reliability.spearman_brown(0.25, factor=3) == pytest.approx(0.5)
    # stepping down and back up is the identity
    assert reliability.spearman_brown(reliability.spearman_brown(0.4, 0.5), 2.0) == pytest.approx(0.4)


def test_split_half_recovers_planted_reliability():
    """responses = signal + noise: the mean of R repetitions has reliability var_s / (var_s + var_n / R)."""
    rng = np.random.default_rng(0)
    reps, n, v, noise_var = 4, 3000, 40, 2.0
    signal = rng.normal(size=(n, v))
    responses = signal[None] + np.sqrt(noise_var) * rng.normal(size=(reps, n, v))
    full = 1.0 / (1.0 + noise_var / reps)          # 2/3
    half = 1.0 / (1.0 + noise_var / (reps // 2))   # 1/2
    corrected = reliability.split_half_reliability(responses, n_splits=20)
    raw = reliability.split_half_reliability(responses, n_splits=20, correct=False)
    assert corrected.shape == (v,)
    # per-neuroid sampling SD ~ (1 - r^2) / sqrt(n) ~ 0.015; the mean over 40 neuroids is within ~0.003
    assert corrected.mean() == pytest.approx(full, abs=0.01)
    assert raw.mean() == pytest.approx(half, abs=0.01)
    # a neuroid without signal has reliability ~ 0
    noise_only = rng.normal(size=(reps, n, 5))
    assert np.abs(reliability.split_half_reliability(noise_only, n_splits=10)).max() < 0.15


def _planted_subjects(n_subjects=6, n=3000, v=20, noise_var=1.5, seed=1):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, v))
    return signal[None] + np.sqrt(noise_var) * rng.normal(size=(n_subjects, n, v))


def _mean_pearson(x, y):
    return float(np.mean([scipy.stats.pearsonr(x[:, j], y[:, j])[0] for j in range(x.shape[1])]))


def test_pairwise_and_loso_ceilings_recover_planted_values():
    noise_var, count = 1.5, 6
    data = _planted_subjects(count, noise_var=noise_var)
    pairwise = subjects.pairwise_subject_scores(list(data), _mean_pearson)
    assert pairwise.shape == (count, count) and np.isnan(np.diag(pairwise)).all()
    lower = subjects.pairwise_ceiling(pairwise)
    # two subjects share var_s = 1 and each adds var_n: r = 1 / (1 + var_n) = 0.4
    np.testing.assert_allclose(lower, 1 / (1 + noise_var), atol=0.02)
    # the mean of the 5 others has noise var_n / 5: r = 1 / sqrt((1 + var_n)(1 + var_n / 5)) = 0.555
    upper = subjects.loso_subject_scores(data, _mean_pearson)
    np.testing.assert_allclose(upper, 1 / np.sqrt((1 + noise_var) * (1 + noise_var / (count - 1))), atol=0.02)
    assert (upper > lower).all()


def test_pairwise_ceiling_on_a_brain_to_brain_score_array():
    """The stored layout: (source_subject, source_region, region, subject) with NaN where the source is the target."""
    rng = np.random.default_rng(2)
    names = ["sub-01", "sub-02", "sub-03", "sub-04"]
    values = rng.random((4, 2, 3, 4))
    raw = xr.DataArray(values, dims=("source_subject", "source_region", "region", "subject"),
                       coords={"source_subject": names, "subject": names})
    expected = np.stack([np.delete(values[..., s], s, axis=0).mean(0) for s in range(4)], axis=-1)
    got = subjects.pairwise_ceiling(raw)
    assert got.dims == ("source_region", "region", "subject")
    np.testing.assert_allclose(got.values, expected, atol=1e-15)  # self-pairs ignored even though not NaN
    diag = raw.copy()
    for s in range(4):
        diag[s, :, :, s] = np.nan
    np.testing.assert_allclose(subjects.pairwise_ceiling(diag).values, expected, atol=1e-15)
    with pytest.raises(InputError, match="source_subject"):
        subjects.pairwise_ceiling(raw.rename(source_subject="other"))


def test_bootstrap_over_subjects_matches_normal_theory():
    rng = np.random.default_rng(3)
    scores = 0.3 + 0.1 * rng.normal(size=(2, 400))  # 2 regions x 400 "subjects"
    scores[1] += 0.2
    result = resampling.bootstrap_over_subjects(scores, n_bootstrap=4000, random_state=0)
    np.testing.assert_allclose(result.estimate, scores.mean(1))
    se = scores.std(1, ddof=1) / np.sqrt(400)
    np.testing.assert_allclose(result.se, se, rtol=0.08)
    np.testing.assert_allclose(result.low, scores.mean(1) - 1.96 * se, atol=0.15 * se.max())
    np.testing.assert_allclose(result.high, scores.mean(1) + 1.96 * se, atol=0.15 * se.max())


def test_bootstrap_over_stimuli_matches_normal_theory():
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.exponential(size=500))  # skewed, known mean 1 and SD 1
    result = resampling.bootstrap_over_stimuli(lambda index: x[index].mean(-1), 500, n_bootstrap=3000)
    assert float(result.estimate) == pytest.approx(float(x.mean()))
    se = float(x.std()) / np.sqrt(500)
    assert float(result.se) == pytest.approx(se, rel=0.08)
    assert float(result.low) < float(x.mean()) < float(result.high)
    assert float(result.high - result.low) == pytest.approx(2 * 1.96 * se, rel=0.12)


def test_across_subjects_statistics_match_scipy():
    rng = np.random.default_rng(5)
    scores = rng.normal(0.1, 0.2, size=(3, 12))
    stats = subjects.across_subjects(scores)
    ttest = scipy.stats.ttest_1samp(scores, 0.0, axis=1)
    np.testing.assert_allclose(stats.p, ttest.pvalue, rtol=1e-12)
    np.testing.assert_allclose(stats.t, ttest.statistic, rtol=1e-12)
    np.testing.assert_allclose(stats.sem, scipy.stats.sem(scores, axis=1), rtol=1e-12)


def test_permutation_p_values_are_calibrated_under_a_planted_null():
    """Independent data: P(p <= 0.05) = 0.05 exactly for (1 + count) / (1 + 99) p-values; check over 300 datasets."""
    rng = np.random.default_rng(6)
    rejected = 0
    for trial in range(300):
        x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
        _, _, p = cka.permutation_test(x, y, n_permutations=99, random_state=trial)
        rejected += p <= 0.05
    # binomial(300, 0.05): mean 15, 99.9 % interval about [5, 28]
    assert 5 <= rejected <= 28


def test_cka_permutation_test_on_planted_dependence():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(30, 4))
    y = x @ rng.normal(size=(4, 3)) + 0.1 * rng.normal(size=(30, 3))
    observed, null, p = cka.permutation_test(x, y, kernel="rbf", threshold=1.0, n_permutations=199)
    assert observed == pytest.approx(cka.rbf_cka(x, y, threshold=1.0))
    assert p == pytest.approx(1 / 200) and null.max() < observed
    # null values equal CKA of independently permuted data
    from cortexbench.plugins.metrics.ceilings.resampling import random_permutations

    perm = random_permutations(30, 199, 0)[5].numpy()
    assert null[5] == pytest.approx(cka.rbf_cka(x, y[perm], threshold=1.0), abs=1e-12)
    # exact enumeration: X against itself, n = 5 generic points, only the identity attains CKA 1
    _, null, p = cka.permutation_test(x[:5], x[:5], exact=True)
    assert len(null) == 120 and p == pytest.approx(1 / 120)


def test_clear_errors():
    with pytest.raises(InputError, match="2 repetitions"):
        reliability.split_half_reliability(np.ones((1, 5, 2)))
    with pytest.raises(InputError, match="NaN"):
        reliability.split_half_reliability(np.full((2, 5, 2), np.nan))
    with pytest.raises(InputError, match="shared response space"):
        subjects.loso_subject_scores([np.ones((5, 2)), np.ones((5, 3))], _mean_pearson)
    with pytest.raises(InputError, match="different numbers of stimuli"):
        subjects.pairwise_subject_scores([np.ones((5, 2)), np.ones((4, 2))], _mean_pearson)
    with pytest.raises(InputError, match="at least 2 subjects"):
        resampling.bootstrap_over_subjects(np.ones((3, 1)))
    with pytest.raises(InputError, match="too many"):
        resampling.all_permutations(12)
