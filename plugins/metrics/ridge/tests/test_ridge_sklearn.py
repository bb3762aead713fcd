"""Ridge against scikit-learn (RidgeCV, Ridge, KFold, r2_score) computed in the test, and Hoefling et al.'s protocol
re-implemented with scikit-learn as in bethgelab/alignment-pattern-analysis (LinearPredictivity)."""
import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.ridge import functional as R

ALPHAS = np.logspace(-2, 6, 17)


def _problem(n, p, t, seed, noise=2.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 3, size=p) + rng.normal(size=p)
    W = rng.normal(size=(p, t)) * (rng.random((p, t)) < 0.3)
    Y = X @ W + noise * rng.normal(size=(n, t)) + 5.0
    return X, Y


@pytest.mark.parametrize("n,p", [(40, 120), (150, 25)])  # the Gram (n <= p) and covariance (n > p) paths
@pytest.mark.parametrize("alpha_per_target", [False, True])
def test_ridge_gcv_matches_sklearn_ridgecv(n, p, alpha_per_target):
    X, Y = _problem(n, p, 6, seed=n + p)
    ours = R.RidgeGCV(ALPHAS, alpha_per_target=alpha_per_target).fit(X, Y)
    ref = RidgeCV(alphas=ALPHAS, alpha_per_target=alpha_per_target, store_cv_results=True).fit(X, Y)
    np.testing.assert_array_equal(np.atleast_1d(ours.alpha_), np.atleast_1d(ref.alpha_))
    np.testing.assert_allclose(ours.coef_.numpy(), ref.coef_.T, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours.intercept_.numpy(), ref.intercept_, rtol=1e-10, atol=1e-10)
    # the leave-one-out errors themselves: sklearn stores squared LOO residuals (n, t, n_alphas)
    loo = ref.cv_results_.mean(0) if alpha_per_target else ref.cv_results_.mean((0, 1))
    np.testing.assert_allclose(ours.loo_mse_.numpy(), loo.T if alpha_per_target else loo, rtol=1e-9)
    np.testing.assert_allclose(ours.predict(X).numpy(), ref.predict(X), rtol=1e-9, atol=1e-9)
    # and a plain Ridge at the chosen alpha(s)
    ridge = Ridge(alpha=np.atleast_1d(ours.alpha_) if alpha_per_target else ours.alpha_).fit(X, Y)
    np.testing.assert_allclose(ours.coef_.numpy(), ridge.coef_.T, rtol=1e-8, atol=1e-10)


def test_kfold_matches_sklearn():
    for n, k, seed in ((23, 5, 3), (998, 5, 1), (10, 2, 0)):
        ours = R.kfold_indices(n, k, shuffle=True, random_state=seed)
        for (a, b), (c, d) in zip(KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)), ours):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def _hoefling_reference(Xtr, Ytr, Xte, Yte, seed, alpha_per_target):
    """Hoefling et al.'s LinearPredictivity with scikit-learn, per target (their score averages these over targets)."""
    mx, sx, my, sy = Xtr.mean(0), Xtr.std(0), Ytr.mean(0), Ytr.std(0)
    x, y, xt, yt = (Xtr - mx) / sx, (Ytr - my) / sy, (Xte - mx) / sx, (Yte - my) / sy
    n, t = y.shape
    train_r2, train_r, test_r2, test_r, alphas = np.zeros(t), np.zeros(t), [], [], []
    for fit, held in KFold(5, shuffle=True, random_state=seed).split(x):
        model = RidgeCV(alphas=np.logspace(0, 9, 19), alpha_per_target=alpha_per_target).fit(x[fit], y[fit])
        pred = model.predict(x[held])
        train_r2 += r2_score(y[held], pred, multioutput="raw_values") * len(held) / n
        train_r += np.array([scipy.stats.pearsonr(pred[:, j], y[held, j])[0] for j in range(t)]) * len(held) / n
        pred = model.predict(xt)
        test_r2.append(r2_score(yt, pred, multioutput="raw_values"))
        test_r.append([scipy.stats.pearsonr(pred[:, j], yt[:, j])[0] for j in range(t)])
        alphas.append(np.broadcast_to(model.alpha_, (t,)))
    return train_r2, train_r, np.mean(test_r2, 0), np.mean(test_r, 0), np.array(alphas), np.array(test_r2)


@pytest.mark.parametrize("alpha_per_target", [False, True])
def test_ridge_cv_reproduces_hoefling_protocol(alpha_per_target):
    X, Y = _problem(130, 90, 12, seed=5, noise=4.0)
    Xtr, Ytr, Xte, Yte = X[:100], Y[:100], X[100:], Y[100:]
    res = R.ridge_cv(Xtr, Ytr, Xte, Yte, random_state=1, alpha_per_target=alpha_per_target, n_targets_batch=5)
    train_r2, train_r, test_r2, test_r, alphas, folds = _hoefling_reference(Xtr, Ytr, Xte, Yte, 1, alpha_per_target)
    np.testing.assert_allclose(res.train_r2, train_r2, atol=1e-10)
    np.testing.assert_allclose(res.train_r, train_r, atol=1e-10)
    np.testing.assert_allclose(res.test_r2, test_r2, atol=1e-10)
    np.testing.assert_allclose(res.test_r, test_r, atol=1e-10)
    np.testing.assert_allclose(res.test_r2_folds, folds, atol=1e-10)
    np.testing.assert_array_equal(res.alphas, alphas)
    # Hoefling et al.'s headline numbers are these averaged over targets
    assert res.train_r2.mean() == pytest.approx(train_r2.mean(), abs=1e-10)


def test_ridge_cv_recovers_planted_encoding_and_is_batch_invariant():
    rng = np.random.default_rng(8)
    n, p = 160, 40
    X = rng.normal(size=(n, p))
    W = rng.normal(size=(p, 6))
    Y = np.hstack([X @ W + 0.5 * rng.normal(size=(n, 6)), rng.normal(size=(n, 4))])  # 6 encoded, 4 pure noise
    res = R.ridge_cv(X[:120], Y[:120], X[120:], Y[120:])
    assert (res.test_r2[:6] > 0.8).all() and (res.test_r[:6] > 0.9).all()
    assert (res.test_r2[6:] < 0.1).all() and (res.train_r2[6:] < 0.1).all()
    batched = R.ridge_cv(X[:120], Y[:120], X[120:], Y[120:], n_targets_batch=3)
    np.testing.assert_allclose(batched.test_r2, res.test_r2, atol=1e-12)
    np.testing.assert_array_equal(batched.alphas, res.alphas)
    # float32 (the CUDA default) agrees to float32 accuracy
    single = R.ridge_cv(X[:120], Y[:120], X[120:], Y[120:], dtype=torch.float32)
    np.testing.assert_allclose(single.test_r2, res.test_r2, atol=1e-4)
    # no test data: test scores are NaN
    assert np.isnan(R.ridge_cv(X[:120], Y[:120]).test_r2).all()


def test_clear_errors_for_bad_input():
    X, Y = _problem(50, 10, 3, seed=1)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(InputError, match="X_train contains NaN"):
        R.ridge_cv(Xn, Y)
    Yc = Y.copy()
    Yc[:, 1] = 2.0
    with pytest.raises(InputError, match="constant target"):
        R.ridge_cv(X, Yc)
    with pytest.raises(InputError, match="samples"):
        R.ridge_cv(X, Y[:40])
    with pytest.raises(InputError, match="both X_test and Y_test"):
        R.ridge_cv(X, Y, X_test=X)
    with pytest.raises(InputError, match="alphas"):
        R.ridge_cv(X, Y, alphas=[1.0, -1.0])
    # constant feature columns are harmless (they carry no information) and give the same result as dropping them
    Xc = np.hstack([X, np.full((50, 1), 7.0)])
    np.testing.assert_allclose(R.ridge_cv(Xc, Y).train_r2, R.ridge_cv(X, Y).train_r2, atol=1e-12)


def test_groups_share_an_alpha_within_each_group_only():
    """Several regions in one call give exactly what fitting each region on its own gives."""
    X, Y = _problem(90, 30, 9, seed=11, noise=6.0)
    Y[:, 3:6] *= 0.05  # a group with a different signal-to-noise ratio wants a different alpha
    Y[:, 3:6] += np.random.default_rng(0).normal(size=(90, 3))
    groups = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    together = R.ridge_cv(X[:70], Y[:70], X[70:], Y[70:], groups=groups, n_targets_batch=4)
    for g in range(3):
        cols = slice(3 * g, 3 * g + 3)
        alone = R.ridge_cv(X[:70], Y[:70, cols], X[70:], Y[70:, cols])
        np.testing.assert_allclose(together.test_r2[cols], alone.test_r2, atol=1e-12)
        np.testing.assert_array_equal(together.alphas[:, cols], alone.alphas)
    assert len(np.unique(together.alphas[0])) > 1  # the groups really chose differently
