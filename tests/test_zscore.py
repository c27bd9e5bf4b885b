"""z-scoring helpers against scipy.stats.zscore (ddof = 0) and their rules for constant lines."""

from __future__ import annotations

import numpy as np
from scipy import stats

from brainalign.zscore import zscore_block, zscore_columns, zscore_rows, zscore_within_sessions


def test_zscore_block_matches_scipy_and_zeroes_constant_columns():
    rng = np.random.default_rng(0)
    block = rng.normal(size=(40, 9)) * rng.uniform(0.1, 5, 9) + rng.normal(size=9) * 10
    block[:, 4] = 3.25  # constant voxel
    got = zscore_block(block.copy(), columns_per_pass=4)  # several slabs
    assert got.dtype == np.float32
    keep = np.arange(9) != 4
    np.testing.assert_allclose(got[:, keep], stats.zscore(block[:, keep], axis=0, ddof=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[:, 4], 0.0)
    # a float32 input is z-scored in place (no second copy of a session of betas)
    f32 = block.astype(np.float32)
    assert zscore_block(f32) is f32


def test_zscore_within_sessions_uses_each_sessions_own_statistics():
    rng = np.random.default_rng(1)
    betas = rng.normal(size=(30, 5))
    sessions = np.repeat([2, 1, 3], 10)
    betas[sessions == 1] = betas[sessions == 1] * 7 - 4
    got = zscore_within_sessions(betas, sessions)
    for s in (1, 2, 3):
        rows = sessions == s
        np.testing.assert_allclose(got[rows], stats.zscore(betas[rows], axis=0), rtol=1e-5, atol=1e-6)


def test_zscore_rows_and_columns_match_scipy_and_keep_constant_lines_finite():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(6, 11)) * 3 + 1
    np.testing.assert_allclose(zscore_rows(X), stats.zscore(X, axis=1), rtol=1e-12)
    np.testing.assert_allclose(zscore_columns(X), stats.zscore(X, axis=0), rtol=1e-12)
    const_row, const_col = X.copy(), X.copy()
    const_row[2] = 5.0
    const_col[:, 7] = -1.0
    rows, cols = zscore_rows(const_row), zscore_columns(const_col)
    assert rows.dtype == cols.dtype == np.float64
    np.testing.assert_allclose(rows[2], 0.0, atol=1e-12)
    np.testing.assert_allclose(cols[:, 7], 0.0, atol=1e-12)
