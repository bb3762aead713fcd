"""Batched BOLD Moments scoring equals the paper's per-(layer, region, subject) computation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr

from cortexbench.plugins.benchmarks.bold_moments.protocol import RIDGE_ALPHAS
from cortexbench.plugins.benchmarks.bold_moments.scoring import condensed_rdms, grouped_ridge_cv, rsa_scores
from cortexbench.plugins.metrics.ridge.functional import ridge_cv


def _data(seed=0, n=70, n_test=20, p=45, sizes=(3, 5, 2, 4)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + n_test, p))
    ys = [x @ rng.normal(size=(p, k)) * rng.uniform(0.1, 1.0) + 2.5 * rng.normal(size=(n + n_test, k))
          for k in sizes]
    groups = np.concatenate([np.full(k, g) for g, k in enumerate(sizes)])
    return x, ys, groups, n


def _paper(x, y, n):
    """The authors' LinearPredictivity: z-score, KFold(5, shuffle, seed 1), sklearn RidgeCV per fold."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold

    xtr, ytr, xte, yte = x[:n], y[:n], x[n:], y[n:]
    xm, xs, ym, ys = xtr.mean(0), xtr.std(0), ytr.mean(0), ytr.std(0)
    xtr, ytr, xte, yte = (xtr - xm) / xs, (ytr - ym) / ys, (xte - xm) / xs, (yte - ym) / ys
    held_scores, models = [], []
    for fit, held in KFold(5, shuffle=True, random_state=1).split(xtr):
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit(xtr[fit], ytr[fit])
        held_scores.append(model.score(xtr[held], ytr[held]) * len(held))
        models.append(model)
    return np.sum(held_scores) / n, np.mean([m.score(xte, yte) for m in models]), [m.alpha_ for m in models]


@pytest.mark.parametrize("shape", [dict(p=45), dict(p=120)])   # n > p and n < p designs
def test_grouped_ridge_matches_sklearn_and_ridge_cv_per_group(shape):
    x, ys, groups, n = _data(**shape)
    y = np.concatenate(ys, 1)
    result = grouped_ridge_cv(x[:n], y[:n], x[n:], y[n:], groups)
    for g, yg in enumerate(ys):
        train, test, alphas = _paper(x, yg, n)
        assert result.train[g] == pytest.approx(train, abs=1e-10)
        assert result.test[g] == pytest.approx(test, abs=1e-10)
        np.testing.assert_allclose(result.alphas[:, g], alphas)
        single = ridge_cv(x[:n], yg[:n], x[n:], yg[n:], random_state=1)
        assert result.train[g] == pytest.approx(single.train_r2.mean(), abs=1e-10)
        assert result.test[g] == pytest.approx(single.test_r2.mean(), abs=1e-10)


def test_groups_choose_their_own_alpha():
    """A clean group and a noisy group sharing X pick different alphas, as separate RidgeCV fits would."""
    x, _, _, n = _data()
    rng = np.random.default_rng(3)
    clean = x @ rng.normal(size=(x.shape[1], 3))
    noisy = x @ rng.normal(size=(x.shape[1], 3)) * 0.05 + 3 * rng.normal(size=(len(x), 3))
    y = np.concatenate([clean, noisy], 1)
    result = grouped_ridge_cv(x[:n], y[:n], x[n:], y[n:], [0, 0, 0, 1, 1, 1])
    assert result.alphas[:, 0].max() < result.alphas[:, 1].min()
    assert result.train[0] > 0.9 > result.train[1]


def test_batched_rsa_equals_scipy_per_pair():
    rng = np.random.default_rng(0)
    preds = [rng.normal(size=(30, d)) for d in (8, 50)]
    targets = [preds[0] @ rng.normal(size=(8, 12)) + rng.normal(size=(30, 12)), rng.normal(size=(30, 5))]
    scores = rsa_scores(condensed_rdms(preds), condensed_rdms(targets))
    for i, a in enumerate(preds):
        for j, b in enumerate(targets):
            assert scores[i, j] == pytest.approx(pearsonr(pdist(a, "correlation"), pdist(b, "correlation"))[0],
                                                 abs=1e-12)
