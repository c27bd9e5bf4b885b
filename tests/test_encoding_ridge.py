"""Voxelwise ridge: the torch solver against scikit-learn and himalaya, and planted alpha recovery."""

import warnings

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


# ---------------------------------------------------------------- dead (constant) voxels
def _with_dead_voxels(Y):
    """Y with four dead voxels inserted: constants that float rounding does not centre to exactly 0."""
    dead = np.array([1, 3, 4, 7])
    out = np.insert(Y, dead - np.arange(len(dead)), 0.0, axis=1)
    out[:, dead] = [0.1, 1234.567, 0.0, -3e-5]
    return out, dead


@pytest.mark.parametrize("backend,dtype", [("torch", "float32"), ("torch", "float64"), ("sklearn", "float64"),
                                           ("himalaya", "float32")])
def test_dead_voxels_get_nan_cv_r2_not_one(backend, dtype):
    """0 / 0 is undefined: sklearn's r2_score(force_finite=False) of a constant target predicted exactly is NaN
    (its default force_finite=True reports the same case as a perfect 1.0, the bug this guards against)."""
    from sklearn.metrics import r2_score

    assert np.isnan(r2_score([0.1] * 5, [0.1] * 5, force_finite=False))
    X, Y = planted(60, 12, 6, seed=7)
    Yd, dead = _with_dead_voxels(Y)
    live = np.setdiff1d(np.arange(Yd.shape[1]), dead)
    fit = fit_voxelwise_ridge(X, Yd, ALPHAS, n_folds=4, backend=backend, dtype=dtype)
    assert np.isnan(fit.cv_r2[dead]).all()
    assert np.isfinite(fit.cv_r2[live]).all()
    # the other voxels are fitted exactly as without the dead ones (voxels are independent)
    alone = fit_voxelwise_ridge(X, Y, ALPHAS, n_folds=4, backend=backend, dtype=dtype)
    np.testing.assert_allclose(fit.cv_r2[live], alone.cv_r2, rtol=1e-5, atol=1e-6)
    # a dead voxel predicts its constant, with no coefficients and no residual scale
    np.testing.assert_array_equal(fit.coef[:, dead], 0.0)
    np.testing.assert_array_equal(fit.y_scale[dead], 0.0)
    np.testing.assert_allclose(fit.predict(X[:3])[:, dead], np.broadcast_to(Yd[0, dead], (3, 4)), rtol=1e-6)


def test_constant_lines_score_nan_and_roi_summaries_count_dead_voxels():
    """Test scores of a constant voxel are NaN (scipy pearsonr, sklearn r2_score(force_finite=False)), also when
    centring leaves a rounding residue (0.1 in float64 against its float32 prediction); ROI means leave dead
    voxels out and count them."""
    import pandas as pd
    from sklearn.metrics import r2_score

    from brainalign.encoding import scoring

    rng = np.random.default_rng(8)
    truth = rng.normal(size=(20, 4))
    truth[:, 1] = 0.1
    pred = truth + rng.normal(size=truth.shape) * 0.5
    pred[:, 1] = np.float32(0.1)
    pred[:, 2] = 2.0  # a constant prediction of a live voxel
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        ref_r = [stats.pearsonr(truth[:, v], pred[:, v]).statistic for v in range(4)]  # NaN for constant input
        ref_r2 = r2_score(truth, pred, multioutput="raw_values", force_finite=False)
    assert np.isnan(ref_r).sum() == 2
    np.testing.assert_allclose(scoring.pearson_r(truth, pred), ref_r, rtol=1e-12)
    # sklearn's own 0 / 0 test sees the rounding residue of centring 0.1 and reports ~-1e16 for voxel 1
    ours = scoring.r2_score(truth, pred)
    assert np.isnan(ours[1]) and abs(ref_r2[1]) > 1e10
    np.testing.assert_allclose(ours[[0, 2, 3]], ref_r2[[0, 2, 3]], rtol=1e-12)

    table = pd.DataFrame({"voxel": np.arange(6), "layer": "conv", "r": [0.5, np.nan, 0.3, 0.1, np.nan, 0.2],
                          "r2": [0.2, np.nan, 0.1, 0.0, np.nan, 0.05], "nc": [0.8, np.nan, 0.6, 0.5, 1.0, 0.4],
                          "score": [0.3, np.nan, 0.2, 0.1, 0.0, 0.1], "cv_r2": [0.3, np.nan, 0.2, 0.1, np.nan, 0.1]})
    out = scoring.summarize(table, {"roi": np.ones(6, bool)}).iloc[0]
    live = table[table["cv_r2"].notna()]
    assert out["n_voxels"] == 6 and out["n_dead"] == 2
    for col in ("r", "r2", "cv_r2", "nc", "score"):
        assert out[f"mean_{col}"] == pytest.approx(live[col].mean())  # voxel 4's nc 1.0 and score 0.0 left out
    assert out["median_score"] == pytest.approx(live["score"].median())
