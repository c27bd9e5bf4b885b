"""Banded ridge: planted band structure recovered, and the fit equals himalaya's BandedRidgeCV and an
exhaustive scikit-learn Ridge search over the same candidates, folds and alphas."""

from math import comb

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from brainalign.encoding import band_candidates, band_shares, fit_banded_ridge, r2_split

ALPHAS = np.logspace(-2, 4, 9)


def planted_bands(n, sizes, owners, seed=0, noise=0.8):
    """Bands of random features (different scales and offsets); voxel v is driven by the bands in owners[v]."""
    rng = np.random.default_rng(seed)
    bands = [rng.normal(size=(n, p)) * rng.uniform(0.5, 3, p) + rng.normal(size=p) * 4 for p in sizes]
    Y = np.zeros((n, len(owners)))
    for v, own in enumerate(owners):
        for b in own:
            Z = (bands[b] - bands[b].mean(0)) / bands[b].std(0)
            Y[:, v] += Z @ rng.normal(size=sizes[b]) / np.sqrt(sizes[b])
    Y += rng.normal(size=Y.shape) * noise + rng.normal(size=len(owners)) * 5
    return bands, Y


def test_band_candidates():
    c = band_candidates(4, "random:30", seed=3)
    assert c.shape == (30, 4)
    np.testing.assert_allclose(c.sum(1), 1.0)
    np.testing.assert_allclose(c[0], 0.25)  # the centre first
    np.testing.assert_array_equal(c[1:5], np.eye(4))  # then every single band
    assert (c >= 0).all() and len(np.unique(c.round(12), axis=0)) == 30
    np.testing.assert_array_equal(c, band_candidates(4, "random:30", seed=3))
    g = band_candidates(3, "grid:4")
    assert g.shape == (comb(4 + 2, 2), 3)
    np.testing.assert_allclose(g.sum(1), 1.0)
    assert set(np.unique(g * 4)) <= {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(band_candidates(1, "random:10"), [[1.0]])
    with pytest.raises(ValueError):
        band_candidates(3, "random:3")
    with pytest.raises(ValueError):
        band_candidates(3, "lattice:3")


def test_band_weights_recover_planted_bands():
    sizes = [8, 40, 20]
    owners = [(0,)] * 15 + [(1,)] * 15 + [(2,)] * 15 + [(0, 2)] * 15
    bands, Y = planted_bands(600, sizes, owners, seed=1)
    fit = fit_banded_ridge(bands, Y, ALPHAS, names=["conv1", "conv5", "fc6"], search="random:40", seed=0)
    W = fit.band_weights
    assert W.shape == (60, 3) and np.allclose(W.sum(1), 1)
    single = np.array([o[0] for o in owners[:45]])
    assert np.mean(W[:45].argmax(1) == single) >= 0.95, W[:45].round(2)
    # the planted band carries most of the weight; absent bands get little
    assert W[np.arange(45), single].mean() > 0.8
    # mixed voxels: both planted bands kept (γ is a per-feature prior variance, so the 8-feature band, with
    # larger per-feature weights, and the 20-feature band need not get equal shares), the absent band small
    assert (W[45:, 0] > 0.02).mean() >= 0.9 and (W[45:, 2] > 0.02).mean() >= 0.9
    assert W[45:, 1].mean() < 0.15
    # band penalties follow: the absent band is penalised hardest
    assert np.all(fit.band_alphas[45:, 1] >= fit.band_alphas[45:, [0, 2]].max(1) - 1e-12)
    # shares of the predicted response: the planted band(s) carry it, whatever their number of features
    share = band_shares(fit, np.hstack(bands))
    np.testing.assert_allclose(share.sum(1), 1.0)
    assert np.mean(share[:45].argmax(1) == single) >= 0.95
    assert share[np.arange(45), single].mean() > 0.9
    assert (share[45:, [0, 2]].min(1) > 0.15).mean() >= 0.9 and share[45:, 1].mean() < 0.05


def test_banded_generalises_better_than_single_band_for_mixed_voxels():
    from brainalign.encoding import fit_voxelwise_ridge, pearson_r

    sizes = [10, 30]
    owners = [(0, 1)] * 20
    bands, Y = planted_bands(500, sizes, owners, seed=2, noise=1.0)
    tr, te = slice(0, 400), slice(400, None)
    fit = fit_banded_ridge([b[tr] for b in bands], Y[tr], ALPHAS, search="random:20")
    r_banded = pearson_r(Y[te], fit.predict(np.hstack([b[te] for b in bands])))
    r_single = [pearson_r(Y[te], fit_voxelwise_ridge(b[tr], Y[tr], ALPHAS).predict(b[te])) for b in bands]
    assert np.median(r_banded - np.maximum(*r_single)) > 0.05


def _sklearn_exhaustive(bands, Y, cands, alphas, folds):
    """Reference: per candidate γ and alpha, sklearn Ridge on [√γ_b · z-scored band b], K-fold MSE; per voxel
    the (γ, alpha) with the smallest mean MSE (first candidate, then smallest alpha on ties); refit."""
    Z = [StandardScaler().fit_transform(b) for b in bands]
    Ys = StandardScaler().fit_transform(Y)
    mse = np.zeros((len(cands), len(alphas), Y.shape[1]))
    for c, g in enumerate(cands):
        X = np.hstack([np.sqrt(gb) * zb for gb, zb in zip(g, Z)])
        for tr, va in folds:
            for i, a in enumerate(alphas):
                pred = Ridge(alpha=a).fit(X[tr], Ys[tr]).predict(X[va])
                mse[c, i] += ((pred - Ys[va]) ** 2).mean(0) / len(folds)
    best_a = mse.argmin(1)  # (n_cand, t)
    best_mse = mse.min(1)
    cand = best_mse.argmin(0)
    alpha = np.asarray(alphas)[best_a[cand, np.arange(Y.shape[1])]]
    preds = np.empty((Y.shape[0], Y.shape[1]))
    for v in range(Y.shape[1]):
        g = cands[cand[v]]
        X = np.hstack([np.sqrt(gb) * zb for gb, zb in zip(g, Z)])
        preds[:, v] = Ridge(alpha=alpha[v]).fit(X, Ys[:, v]).predict(X)
    return cand, alpha, best_mse, preds


@pytest.mark.parametrize("n,sizes", [(120, [6, 10, 8]), (40, [20, 30, 10])], ids=["primal", "kernel"])
def test_matches_exhaustive_sklearn_search(n, sizes):
    owners = [(0,), (1,), (2,), (0, 1), (1, 2), (0, 2)] * 2
    bands, Y = planted_bands(n, sizes, owners, seed=4)
    cands = band_candidates(3, "grid:3")  # includes exact zeros (bands left out)
    folds = list(KFold(4).split(Y))
    ref_cand, ref_alpha, ref_mse, ref_pred = _sklearn_exhaustive(bands, Y, cands, ALPHAS, folds)
    fit = fit_banded_ridge(bands, Y, ALPHAS, candidates=cands, splits=folds, dtype="float64")
    np.testing.assert_allclose(fit.cv_mse, ref_mse, rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(fit.candidate, ref_cand)
    np.testing.assert_array_equal(fit.alpha, ref_alpha)
    np.testing.assert_allclose(fit.band_weights, cands[ref_cand])
    ours = (fit.predict(np.hstack(bands)) - fit.y_mean) / fit.y_scale
    np.testing.assert_allclose(ours, ref_pred, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("n,sizes", [(150, [5, 12, 20]), (50, [30, 40, 15])], ids=["primal", "kernel"])
def test_matches_himalaya_banded_ridge_cv(n, sizes):
    from himalaya.backend import set_backend
    from himalaya.ridge import BandedRidgeCV

    owners = [(0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2)] * 3
    bands, Y = planted_bands(n, sizes, owners, seed=5)
    # himalaya divides the features back by sqrt(γ) after each candidate, so exact zeros are not allowed
    cands = np.maximum(band_candidates(3, "random:25", seed=2), 1e-9)
    cands /= cands.sum(1, keepdims=True)
    folds = list(KFold(5).split(Y))
    Xs = np.hstack([StandardScaler().fit_transform(b) for b in bands])
    Ys = StandardScaler().fit_transform(Y)
    groups = np.repeat(np.arange(3), sizes)
    set_backend("numpy")
    ref = BandedRidgeCV(groups=groups, cv=folds, fit_intercept=True,
                        solver_params=dict(n_iter=cands, alphas=ALPHAS, progress_bar=False, warn=False))
    ref.fit(Xs, Ys)
    ratio = np.exp(ref.deltas_).T  # γ / α per voxel
    ref_alpha = 1.0 / ratio.sum(1)
    ref_gamma = ratio * ref_alpha[:, None]
    fit = fit_banded_ridge(bands, Y, ALPHAS, candidates=cands, splits=folds, dtype="float64")
    np.testing.assert_allclose(fit.cv_mse, -ref.cv_scores_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(fit.alpha, ref_alpha, rtol=1e-6)
    np.testing.assert_allclose(fit.band_weights, ref_gamma, rtol=1e-6, atol=1e-12)
    ours = (fit.predict(np.hstack(bands)) - fit.y_mean) / fit.y_scale
    np.testing.assert_allclose(ours, ref.predict(Xs), rtol=1e-6, atol=1e-8)
    # each band's share of the prediction equals that band's features times himalaya's coefficients
    # (himalaya's predict(split=True) is not implemented with an intercept)
    split = fit.predict_split(np.hstack(bands)) / fit.y_scale
    ref_split = np.stack([Xs[:, groups == b] @ ref.coef_[groups == b] for b in range(3)])
    np.testing.assert_allclose(split, ref_split, rtol=1e-6, atol=1e-8)


def test_r2_split_matches_himalaya():
    from himalaya.backend import set_backend
    from himalaya.scoring import r2_score_split

    rng = np.random.default_rng(7)
    y = rng.normal(size=(80, 6)) + 3
    parts = rng.normal(size=(3, 80, 6)) * 0.5 + y[None] * 0.3 + 1
    set_backend("numpy")
    yc = y - y.mean(0)
    pc = parts - parts.mean(1, keepdims=True)
    np.testing.assert_allclose(r2_split(y, parts), r2_score_split(yc, pc), rtol=1e-10)
    # the split sums to the R² of the centred joint prediction
    joint = 1 - ((yc - pc.sum(0)) ** 2).sum(0) / (yc**2).sum(0)
    np.testing.assert_allclose(r2_split(y, parts).sum(0), joint, rtol=1e-10)


def test_bad_input_is_rejected():
    bands, Y = planted_bands(30, [3, 4], [(0,)] * 2)
    with pytest.raises(ValueError):
        fit_banded_ridge([bands[0], bands[1][:-1]], Y)
    with pytest.raises(ValueError):
        fit_banded_ridge(bands, Y, candidates=np.ones((2, 3)))
    with pytest.raises(ValueError):
        fit_banded_ridge(bands, Y, alphas=[0.0])


@pytest.mark.parametrize("backend", ["torch", "himalaya", "sklearn"])
def test_dead_voxels_get_nan_cv_r2(backend):
    """A constant voxel has nothing to explain: cv_r2 NaN (0 / 0), not 1.0; the other voxels are unaffected."""
    bands, Y = planted_bands(50, [4, 6], [(0,), (1,), (0, 1)], seed=9)
    Yd = np.column_stack([Y[:, 0], np.full(50, 0.1), Y[:, 1], np.full(50, 1234.567), Y[:, 2]])
    cands = np.maximum(band_candidates(2, "grid:2"), 1e-9)
    fit = fit_banded_ridge(bands, Yd, ALPHAS, candidates=cands, n_folds=4, backend=backend, dtype="float64")
    alone = fit_banded_ridge(bands, Y, ALPHAS, candidates=cands, n_folds=4, backend=backend, dtype="float64")
    assert np.isnan(fit.cv_r2[[1, 3]]).all()
    np.testing.assert_allclose(fit.cv_r2[[0, 2, 4]], alone.cv_r2, rtol=1e-6)
    np.testing.assert_array_equal(fit.coef[:, [1, 3]], 0.0)
    np.testing.assert_allclose(fit.predict(np.hstack(bands))[:, [1, 3]], Yd[:, [1, 3]], rtol=1e-12)
    # the band split of a constant target is NaN too, also with a rounding residue left by centring
    parts = fit.predict_split(np.hstack(bands)) + np.float32(0.1)
    assert np.isnan(r2_split(Yd, parts)[:, [1, 3]]).all()
