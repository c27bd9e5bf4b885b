"""The voxelwise ridge solver on the device against himalaya on the CPU (an independent implementation, float64,
the same folds and alphas) and against the same solver on the CPU: same per-voxel alphas, same scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from brainalign.encoding import fit_voxelwise_ridge
from gpu_data import DEVICE, MARKS, ON_CUDA

pytestmark = MARKS

ALPHAS = np.logspace(-1, 7, 20)
#: (n_samples, n_features, n_voxels): more samples than features (primal) and fewer (kernel form)
SHAPES = [(2000, 500, 2000), (400, 1500, 1000)] if ON_CUDA else [(300, 80, 200), (120, 300, 100)]


def planted(n, p, t, n_test, seed=0):
    """Raw features with uneven scales and offsets; voxels with graded noise, so alphas spread over the grid."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n + n_test, p)) * rng.uniform(0.5, 3, size=p) + rng.normal(size=p) * 5).astype(np.float32)
    W = rng.normal(size=(p, t)) / np.sqrt(p)
    Y = X @ W + rng.normal(size=(n + n_test, t)) * np.logspace(-0.5, 1.5, t) + rng.normal(size=t) * 10
    return X[:n], Y[:n].astype(np.float32), X[n:], Y[n:].astype(np.float32)


def pearson_columns(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def himalaya_reference(X, Y, X_test, folds):
    """himalaya (NumPy backend, float64) RidgeCV / KernelRidgeCV on z-scored data with local alphas."""
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    xs, ys = StandardScaler().fit(X.astype(np.float64)), StandardScaler().fit(Y.astype(np.float64))
    set_backend("numpy")
    model_class = RidgeCV if X.shape[0] >= X.shape[1] else KernelRidgeCV
    model = model_class(alphas=ALPHAS, cv=folds, fit_intercept=True, solver_params=dict(local_alpha=True))
    model.fit(xs.transform(X), ys.transform(Y))
    pred = ys.inverse_transform(np.asarray(model.predict(xs.transform(X_test))))
    return np.asarray(model.best_alphas_, dtype=np.float64), pred


@pytest.mark.parametrize("n, p, t", SHAPES, ids=["primal", "kernel"])
def test_device_ridge_matches_himalaya_and_cpu(n, p, t):
    X, Y, X_test, Y_test = planted(n, p, t, n_test=200, seed=n + p)
    folds = list(KFold(5).split(X))
    fit = fit_voxelwise_ridge(X, Y, ALPHAS, splits=folds, device=DEVICE, dtype="float32")
    pred = fit.predict(X_test)
    r = pearson_columns(Y_test.astype(np.float64), pred.astype(np.float64))

    ref_alpha, ref_pred = himalaya_reference(X, Y, X_test, folds)
    step = np.log10(ALPHAS[1] / ALPHAS[0])
    log_diff = np.abs(np.log10(fit.alpha) - np.log10(ref_alpha))
    # float32 CV errors may order two nearly tied neighbouring alphas differently from float64
    assert np.mean(log_diff < 1e-6) >= 0.97, f"same alpha for only {np.mean(log_diff < 1e-6):.1%} of voxels"
    assert log_diff.max() <= step + 1e-6
    ref_r = pearson_columns(Y_test.astype(np.float64), ref_pred)
    same = log_diff < 1e-6
    np.testing.assert_allclose(r[same], ref_r[same], atol=2e-3)
    np.testing.assert_allclose(pred[:, same], ref_pred[:, same], rtol=0,
                               atol=5e-3 * np.abs(ref_pred).max())
    assert abs(np.median(r) - np.median(ref_r)) < 2e-3

    if DEVICE.type != "cpu":  # the same solver on the CPU: the device changes nothing but the speed
        cpu = fit_voxelwise_ridge(X, Y, ALPHAS, splits=folds, device="cpu", dtype="float32")
        assert np.mean(cpu.alpha == fit.alpha) >= 0.99
        same = cpu.alpha == fit.alpha
        np.testing.assert_allclose(fit.coef[:, same], cpu.coef[:, same], rtol=0,
                                   atol=2e-3 * np.abs(cpu.coef).max())
