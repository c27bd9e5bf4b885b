"""Noise ceilings: NSD ncsnr, the (Algonauts) noise ceiling from ncsnr, split-half reliability.

References: /work/shared/datasets.md §1.4 (NSD recipe, nsddatapaper export_noiseceiling.m) and
/work/shared/methods.md §4 (Algonauts 2023 mixed-repetition formula; split-half + Spearman-Brown).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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


def ncsnr_from_betas(betas, stimuli, sessions=None, zscore=True, n_reps=3, split=None):
    """Noise-ceiling SNR per voxel, NSD recipe (datasets.md §1.4).

    1. z-score each voxel within each session (if ``zscore``); 2. keep stimuli with exactly
    ``n_reps`` trials and take each one's variance across its trials (ddof=1); 3. ``v = sqrt(mean
    variance)`` over those stimuli (NaN ignored); 4. ``ncsnr = sqrt(max(0, 1 - v**2)) / v``.

    Parameters
    ----------
    betas : float (n_trials, n_voxels)
    stimuli : (n_trials,) stimulus id per trial
    sessions : (n_trials,), optional
        Session of each trial (required when ``zscore``).
    zscore : bool
    n_reps : int
        Only stimuli with exactly this many trials are used (NSD: 3).
    split : None, 1 or 2
        Use only the odd (1: 1st, 3rd, ... in sorted stimulus order) or even (2) stimuli, like
        NSD's ``ncsnr_split1`` / ``ncsnr_split2``.

    Returns
    -------
    float32 (n_voxels,)
    """
    betas = np.asarray(betas, dtype=np.float64)
    if zscore:
        if sessions is None:
            raise ValueError("zscore=True needs the session of each trial")
        betas = zscore_within_sessions(betas, sessions).astype(np.float64)
    stimuli = pd.Series(np.asarray(stimuli))
    counts = stimuli.value_counts()
    keep = np.sort(counts.index[counts == n_reps].to_numpy())
    if split is not None:
        keep = keep[(0 if split == 1 else 1)::2]
    if len(keep) == 0:
        raise ValueError(f"no stimulus has exactly {n_reps} trials")
    codes = pd.Index(keep).get_indexer(stimuli.to_numpy())
    use = codes >= 0
    x, c = betas[use], codes[use]
    n = np.bincount(c, minlength=len(keep)).astype(np.float64)[:, None]
    s1 = np.zeros((len(keep), betas.shape[1]))
    s2 = np.zeros_like(s1)
    np.add.at(s1, c, x)
    np.add.at(s2, c, x * x)
    var = (s2 - s1 * s1 / n) / (n - 1)  # unbiased variance across the n_reps trials of each stimulus
    var = np.maximum(var, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.sqrt(np.nanmean(var, axis=0))
        out = np.sqrt(np.maximum(0.0, 1.0 - v ** 2)) / v
    return out.astype(np.float32)


def noise_ceiling_from_ncsnr(ncsnr, n, percent=False):
    """Noise ceiling for responses averaged over ``n`` trials.

    ``NC = ncsnr**2 / (ncsnr**2 + A)`` with ``A = 1/n`` (NSD) or, for test images with mixed
    repetition counts, ``A = mean over images of 1/n_i`` = ``(n3/3 + n2/2 + n1/1) / (n3 + n2 + n1)``
    (Algonauts 2023).

    Parameters
    ----------
    ncsnr : float array (n_voxels,)
    n : int or int array (n_images,)
        Repetitions averaged (one number, or one per test image).
    percent : bool
        Return percent (NSD papers) instead of a fraction (Algonauts).

    Returns
    -------
    float64 ndarray like ``ncsnr``
    """
    n = np.asarray(n, dtype=np.float64)
    if np.any(n <= 0):
        raise ValueError("repetition counts must be positive")
    a = float(np.mean(1.0 / n))
    s2 = np.asarray(ncsnr, dtype=np.float64) ** 2
    nc = s2 / (s2 + a)
    return 100.0 * nc if percent else nc


def spearman_brown(r, factor=2.0):
    """Spearman-Brown prophecy: reliability of a measure ``factor`` times as long, ``k r / (1 + (k-1) r)``."""
    r = np.asarray(r, dtype=np.float64)
    return factor * r / (1.0 + (factor - 1.0) * r)


def _pearson_columns(a, b):
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


def split_half_reliability(betas, stimuli, n_splits=0, seed=0, correct=True):
    """Split-half reliability per voxel over stimuli with >= 2 repetitions.

    For each stimulus, its repetitions are divided into two halves (deterministic: even vs odd
    repetition numbers when ``n_splits == 0``; otherwise ``n_splits`` random halvings, averaged);
    the half means are correlated across stimuli (Pearson, per voxel) and, if ``correct``, stepped
    up to the full number of repetitions with Spearman-Brown (factor 2).

    Parameters
    ----------
    betas : float (n_trials, n_voxels)
    stimuli : (n_trials,) stimulus id per trial
    n_splits : int
    seed : int
    correct : bool

    Returns
    -------
    float64 (n_voxels,)
    """
    betas = np.asarray(betas, dtype=np.float64)
    stimuli = np.asarray(stimuli)
    groups = pd.Series(np.arange(len(stimuli))).groupby(stimuli, sort=True).apply(lambda s: s.to_numpy())
    groups = [g for g in groups if len(g) >= 2]
    if len(groups) < 3:
        raise ValueError("split-half reliability needs at least 3 stimuli with >= 2 repetitions")
    rng = np.random.default_rng(seed)
    rs = []
    for split in range(max(1, n_splits)):
        h1 = np.empty((len(groups), betas.shape[1]))
        h2 = np.empty_like(h1)
        for i, rows in enumerate(groups):
            order = rows if n_splits == 0 else rng.permutation(rows)
            if n_splits == 0:
                first, second = order[0::2], order[1::2]
            else:
                half = len(order) // 2
                first, second = order[:half], order[half:]
            h1[i] = betas[first].mean(axis=0)
            h2[i] = betas[second].mean(axis=0)
        rs.append(_pearson_columns(h1, h2))
    r = np.mean(rs, axis=0)
    return spearman_brown(r) if correct else r
