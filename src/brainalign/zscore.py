"""z-scoring of response matrices: within sessions (ingest, ncsnr), and along rows or columns (decoding).

All of them use the population standard deviation (ddof = 0). They differ only in what happens to a
(near-)constant line, and in the precision they return:

* :func:`zscore_block` / :func:`zscore_within_sessions`: float32 out, statistics in float64 a slab of
  columns at a time (arrays the size of a session of betas); a column with zero variance becomes 0.
* :func:`zscore_rows` / :func:`zscore_columns`: float64 out; a standard deviation below 1e-12 is
  replaced by 1, so a constant line becomes its deviations from its mean (0 up to rounding).
"""

from __future__ import annotations

import numpy as np


def zscore_within_sessions(betas, sessions) -> np.ndarray:
    """z-score every voxel within each session (population std, ddof=0; constant voxels -> 0).

    Parameters
    ----------
    betas : float (n_trials, n_voxels)
    sessions : (n_trials,) session label of each trial

    Returns
    -------
    float32 (n_trials, n_voxels)
    """
    betas = np.asarray(betas, dtype=np.float64)
    out = np.empty(betas.shape, dtype=np.float32)
    sessions = np.asarray(sessions)
    for s in np.unique(sessions):
        rows = sessions == s
        out[rows] = zscore_block(betas[rows])
    return out


def zscore_block(block, columns_per_pass: int = 4096) -> np.ndarray:
    """z-score the columns of one block (trials x voxels); ddof=0, zero-variance columns -> 0.

    Statistics are computed in float64, a slab of ``columns_per_pass`` columns at a time, so the
    extra memory is small compared with the block.

    Parameters
    ----------
    block : float (n_trials, n_voxels)

    Returns
    -------
    float32 (n_trials, n_voxels); the input itself when it is already a float32 array.
    """
    out = block if isinstance(block, np.ndarray) and block.dtype == np.float32 else np.asarray(block, np.float32)
    src = np.asarray(block)
    for c0 in range(0, src.shape[1], columns_per_pass):
        x = src[:, c0:c0 + columns_per_pass].astype(np.float64)
        mean = x.mean(axis=0)
        x -= mean
        std = np.sqrt((x * x).mean(axis=0))
        x /= np.where(std > 0, std, 1.0)
        x[:, std == 0] = 0.0
        out[:, c0:c0 + columns_per_pass] = x
    return out


def zscore_columns(X) -> np.ndarray:
    """z-score each column (e.g. a voxel across the patterns of one domain); sd < 1e-12 counts as 1.

    Parameters
    ----------
    X : ndarray (n_rows, n_columns)

    Returns
    -------
    ndarray (n_rows, n_columns) float64
    """
    return _zscore_along(X, 0)


def zscore_rows(X) -> np.ndarray:
    """:func:`zscore_columns` of the transpose: each row (e.g. a pattern across its voxels), same shape out."""
    return _zscore_along(X, 1)


def _zscore_along(X, axis: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(axis, keepdims=True)
    sd[sd < 1e-12] = 1.0
    return (X - X.mean(axis, keepdims=True)) / sd
