"""Voxelwise ridge: the torch solver against scikit-learn and himalaya, and planted alpha recovery."""

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainalign.encoding import fit_voxelwise_ridge

ALPHAS = np.logspace(-2, 5, 15)


def planted(n, p, t, seed=0, noise=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 3, size=p) + rng.normal(size=p) * 5
    W = rng.normal(size=(p, t)) / np.sqrt(p)
    noise = np.logspace(-1, 1.3, t) if noise is None else noise
    Y = X @ W + rng.normal(size=(n, t)) * noise + rng.normal(size=t) * 10
    return X, Y


def brute_force_kfold(X, Y, alphas, n_folds):
    """Per-voxel alpha by an explicit loop over sklearn Ridge fits (reference, independent of our code)."""
    Xs = StandardScaler().fit_transform(X)
    Ys = StandardScaler().fit_transform(Y)
    mse = np.zeros((len(alphas), Y.shape[1]))
    for tr, va in KFold(n_folds).split(Xs):
        for i, a in enumerate(alphas):
            pred = Ridge(alpha=a).fit(Xs[tr], Ys[tr]).predict(Xs[va])
            mse[i] += ((pred - Ys[va]) ** 2).mean(0) / n_folds
    return np.asarray(alphas)[np.argmin(mse, 0)], mse


@pytest.mark.parametrize("n,p", [(150, 40), (60, 120)], ids=["primal", "kernel"])
def test_fixed_alpha_matches_sklearn_ridge(n, p):
    X, Y = planted(n, p, 12)
    Xtest = np.random.default_rng(5).normal(size=(20, p)) * 2
    for a in (0.1, 10.0, 1e4):
        fit = fit_voxelwise_ridge(X, Y, [a], n_folds=3, dtype="float64")
        ref = make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(X, Y)
        np.testing.assert_allclose(fit.predict(Xtest), ref.predict(Xtest), rtol=1e-9, atol=1e-9)
        # our coefficients map z-scored X to z-scored Y
        np.testing.assert_allclose(fit.coef * fit.y_scale, ref[-1].coef_.T, rtol=1e-8, atol=1e-10)
        assert np.all(fit.alpha == a)


@pytest.mark.parametrize("n,p", [(150, 40), (60, 120)], ids=["primal", "kernel"])
def test_kfold_alphas_match_bruteforce_sklearn(n, p):
    X, Y = planted(n, p, 25, seed=1)
    ref_alpha, ref_mse = brute_force_kfold(X, Y, ALPHAS, 5)
    fit = fit_voxelwise_ridge(X, Y, ALPHAS, n_folds=5, dtype="float64")
    np.testing.assert_allclose(fit.cv_mse, ref_mse, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(fit.alpha, ref_alpha)
    # with the same alphas, the refit equals sklearn Ridge per voxel
    Xt = X[:7] + 1
    for v in (0, 12, 24):
        ref = make_pipeline(StandardScaler(), Ridge(alpha=ref_alpha[v])).fit(X, Y[:, v])
        np.testing.assert_allclose(fit.predict(Xt)[:, v], ref.predict(Xt), rtol=1e-8, atol=1e-8)


def test_float32_and_batching_agree_with_float64():
    X, Y = planted(200, 60, 40, seed=2)
    f64 = fit_voxelwise_ridge(X, Y, ALPHAS, dtype="float64")
    f32 = fit_voxelwise_ridge(X, Y, ALPHAS, dtype="float32", voxel_batch=7)
    assert np.mean(f32.alpha == f64.alpha) >= 0.95
    same = f32.alpha == f64.alpha
    np.testing.assert_allclose(f32.predict(X[:5])[:, same], f64.predict(X[:5])[:, same], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("n,p", [(150, 40), (60, 120)], ids=["primal", "kernel"])
def test_matches_himalaya_on_same_folds(n, p):
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    X, Y = planted(n, p, 25, seed=3)
    folds = list(KFold(5).split(X))
    Xs = StandardScaler().fit_transform(X)
    Ys = StandardScaler().fit_transform(Y)
    set_backend("torch")
    try:
        Model = RidgeCV if n >= p else KernelRidgeCV
        ref = Model(alphas=ALPHAS, cv=folds, fit_intercept=True, solver_params=dict(local_alpha=True))
        ref.fit(Xs, Ys)
        ref_alpha = np.asarray(ref.best_alphas_.cpu().numpy())
        ref_pred = np.asarray(ref.predict(Xs[:9]).cpu().numpy())
    finally:
        set_backend("numpy")
    fit = fit_voxelwise_ridge(X, Y, ALPHAS, splits=folds, dtype="float64")
    np.testing.assert_allclose(fit.alpha, ref_alpha, rtol=1e-6)
    ours = (fit.predict(X[:9]) - fit.y_mean) / fit.y_scale
    np.testing.assert_allclose(ours, ref_pred, rtol=1e-6, atol=1e-8)
    # and our himalaya backend wrapper agrees with our solver
    fh = fit_voxelwise_ridge(X, Y, ALPHAS, splits=folds, backend="himalaya", dtype="float64")
    np.testing.assert_array_equal(fh.alpha, fit.alpha)


def test_per_voxel_alpha_recovery_on_planted_noise():
    # y = X w + e with w ~ N(0, tau²), e ~ N(0, sigma_v²): the Bayes-optimal ridge penalty is sigma_v² / tau²
    rng = np.random.default_rng(4)
    n, p, t, tau = 400, 40, 30, 0.1
    X = rng.normal(size=(n, p))
    sigma = np.sqrt(np.logspace(-1.5, 1.5, t)) * tau * np.sqrt(p) / 2
    W = rng.normal(size=(p, t)) * tau
    Y = X @ W + rng.normal(size=(n, t)) * sigma
    planted_alpha = sigma**2 / tau**2
    fit = fit_voxelwise_ridge(X, Y, np.logspace(-1, 5, 25), n_folds=5)
    rho = stats.spearmanr(fit.alpha, planted_alpha).statistic
    err = np.abs(np.log10(fit.alpha / planted_alpha))
    assert rho > 0.85, rho
    assert np.median(err) < 0.5, np.median(err)


def test_standardisation_uses_training_statistics_only():
    X, Y = planted(120, 20, 5, seed=6)
    fit = fit_voxelwise_ridge(X, Y, ALPHAS, dtype="float64")
    np.testing.assert_allclose(fit.x_mean, X.mean(0))
    np.testing.assert_allclose(fit.x_scale, X.std(0))
    np.testing.assert_allclose(fit.y_mean, Y.mean(0))
    np.testing.assert_allclose(fit.y_scale, Y.std(0))
    # a test sample's prediction does not depend on which other test samples are predicted with it
    Xt = np.random.default_rng(0).normal(size=(10, 20)) * 50 + 100
    alone = fit.predict(Xt[:1])
    batch = fit.predict(np.vstack([Xt[:1], Xt[1:] * 3]))
    np.testing.assert_allclose(alone[0], batch[0])


def test_bad_input_is_rejected():
    X, Y = planted(50, 5, 3)
    with pytest.raises(ValueError):
        fit_voxelwise_ridge(X, Y[:-1])
    with pytest.raises(ValueError):
        fit_voxelwise_ridge(X, Y, alphas=[0.0, 1.0])
    Y[0, 0] = np.nan
    with pytest.raises(ValueError):
        fit_voxelwise_ridge(X, Y)
