"""Per-voxel test scores, noise ceilings and summaries (plain arrays).

Noise ceilings are expressed as a fraction of explainable variance in units of r², for targets that are
the mean of the available repetitions of each test image:

* NSD (ncsnr given, datasets.md §1.4, Algonauts 2023 variant; :func:`noise_ceiling_from_ncsnr` of
  :mod:`brainalign.ncsnr`): ``NC = ncsnr² / (ncsnr² + A)`` with
  ``A = mean over test images of 1 / n_reps(image)`` (A = 1/3 when every image has 3 repetitions).
* Without ncsnr (e.g. BOLD5000): split-half reliability (:func:`split_half_noise_ceiling`). For every test
  image with ≥ 2 repetitions the even-numbered and odd-numbered repetitions are averaged, the two half means
  are correlated across images per voxel (ρ), and Spearman–Brown gives the reliability of the full mean,
  ``2ρ / (1 + ρ)``, clipped to [0, 1]. :func:`split_half_reliability` is the same from single trials.

Normalised score (Algonauts): ``max(r, 0)² / NC`` with NC = 0 replaced by 1e-14, capped at 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..ncsnr import noise_ceiling_from_ncsnr


def pearson_r(y_true, y_pred, axis: int = 0) -> np.ndarray:
    """Pearson correlation per column (``axis=0``) or per row (``axis=1``).

    Parameters
    ----------
    y_true, y_pred : ndarray (n_samples, n_voxels)

    Returns
    -------
    ndarray (n_voxels,) float64 (n_samples with ``axis=1``); NaN where either line is constant (all values
    equal, tested exactly: centring such a line leaves a rounding residue that would otherwise give any r).
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    constant = _constant_lines(a, axis) | _constant_lines(b, axis)
    a = a - a.mean(axis, keepdims=True)
    b = b - b.mean(axis, keepdims=True)
    den = np.sqrt((a * a).sum(axis) * (b * b).sum(axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis) / den
    r[constant | (den <= 1e-300)] = np.nan
    return r


def _constant_lines(a: np.ndarray, axis: int) -> np.ndarray:
    """bool: lines along ``axis`` whose values are all equal (NaN lines count as not constant)."""
    return np.ptp(a, axis=axis) == 0 if a.shape[axis] else np.ones(np.delete(a.shape, axis), dtype=bool)


def r2_score(y_true, y_pred) -> np.ndarray:
    """Coefficient of determination per column (``sklearn.metrics.r2_score`` with raw_values).

    Returns
    -------
    ndarray (n_voxels,) float64; NaN where ``y_true`` is constant (sklearn's ``force_finite=False``: no variance
    to explain), tested exactly.
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    ss_res = ((a - b) ** 2).sum(0)
    ss_tot = ((a - a.mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    r2[_constant_lines(a, 0) | (ss_tot <= 1e-300)] = np.nan
    return r2


def stack_repetitions(stimulus, values, order=None):
    """Group single-trial rows by stimulus into a (n_images, max_reps, n_voxels) array (NaN-padded).

    Parameters
    ----------
    stimulus : array (n_trials,)
        Stimulus id of each row (rows in presentation order give repetition order).
    values : ndarray (n_trials, n_voxels)
    order : array, optional
        Stimulus ids defining the output image order (default: sorted unique ids).

    Returns
    -------
    ids : ndarray (n_images,); reps : ndarray (n_images, max_reps, n_voxels) float32; n_reps : int (n_images,)
    """
    stimulus = np.asarray(stimulus).astype(str)
    values = np.asarray(values)
    ids = np.unique(stimulus) if order is None else np.asarray(order).astype(str)
    pos = {s: i for i, s in enumerate(ids)}
    counts = np.zeros(len(ids), dtype=int)
    slot = np.empty(len(stimulus), dtype=int)
    keep = np.zeros(len(stimulus), dtype=bool)
    for k, s in enumerate(stimulus):
        i = pos.get(s)
        if i is None:
            continue
        slot[k] = counts[i]
        counts[i] += 1
        keep[k] = True
    R = int(counts.max()) if len(counts) else 0
    reps = np.full((len(ids), max(R, 1), values.shape[1]), np.nan, dtype=np.float32)
    rows = np.flatnonzero(keep)
    img = np.array([pos[stimulus[k]] for k in rows], dtype=int)
    reps[img, slot[rows]] = values[rows]
    return ids, reps, counts


def split_half_noise_ceiling(reps) -> np.ndarray:
    """Split-half (even vs odd repetitions) reliability with Spearman–Brown, per voxel.

    Parameters
    ----------
    reps : ndarray (n_images, max_reps, n_voxels)
        NaN-padded repetitions (see :func:`stack_repetitions`); images with < 2 reps are ignored.

    Returns
    -------
    ndarray (n_voxels,) float64 in [0, 1]; NaN if fewer than 3 images have ≥ 2 repetitions.
    """
    reps = np.asarray(reps, dtype=np.float64)
    n = (~np.isnan(reps[:, :, 0])).sum(1)
    use = n >= 2
    if use.sum() < 3:
        return np.full(reps.shape[2], np.nan)
    r = reps[use]
    even = np.nanmean(r[:, 0::2], axis=1)
    odd = np.nanmean(r[:, 1::2], axis=1)
    rho = pearson_r(even, odd)
    with np.errstate(invalid="ignore", divide="ignore"):
        sb = spearman_brown(rho)
    return np.clip(sb, 0.0, 1.0)


def spearman_brown(r, factor=2.0):
    """Spearman-Brown prophecy: reliability of a measure ``factor`` times as long, ``k r / (1 + (k-1) r)``."""
    r = np.asarray(r, dtype=np.float64)
    return factor * r / (1.0 + (factor - 1.0) * r)


def split_half_reliability(betas, stimuli, n_splits=0, seed=0, correct=True):
    """Split-half reliability per voxel from single trials, over stimuli with >= 2 repetitions.

    The trial-table form of :func:`split_half_noise_ceiling`, with optional random halvings and without
    clipping. For each stimulus, its repetitions are divided into two halves (deterministic: even vs odd
    repetition numbers when ``n_splits == 0``; otherwise ``n_splits`` random halvings, averaged); the half
    means are correlated across stimuli (Pearson, per voxel) and, if ``correct``, stepped up to the full
    number of repetitions with Spearman-Brown (factor 2).

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

    Raises
    ------
    ValueError
        With fewer than 3 stimuli that have >= 2 repetitions.
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
        rs.append(pearson_r(h1, h2))
    r = np.mean(rs, axis=0)
    return spearman_brown(r) if correct else r


def normalized_score(r, nc) -> np.ndarray:
    """Noise-ceiling-normalised score ``min(max(r, 0)² / NC, 1)`` (NC = 0 -> 1e-14; NaN NC -> NaN)."""
    r = np.asarray(r, dtype=np.float64)
    nc = np.array(nc, dtype=np.float64)
    nc[nc == 0] = 1e-14
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.clip(np.nan_to_num(r, nan=0.0), 0, None) ** 2 / nc
    s = np.minimum(s, 1.0)
    s[np.isnan(nc) | np.isnan(r)] = np.nan
    return s


def summarize(voxel_table: pd.DataFrame, roi_masks: dict, by=("layer",)) -> pd.DataFrame:
    """Per-ROI summaries of a tidy per-voxel table.

    Parameters
    ----------
    voxel_table : DataFrame with columns ``voxel`` (int index), ``r``, ``r2``, ``nc``, ``score``, ``cv_r2``
        and the ``by`` columns.
    roi_masks : dict name -> bool ndarray (n_voxels,)

    Returns
    -------
    DataFrame: roi, *by, n_voxels, n_dead, mean_r, median_r, mean_r2, mean_cv_r2, mean_nc, mean_score,
    median_score. ``n_dead`` counts the dead voxels (constant training responses: ``cv_r2`` NaN); every mean
    and median is over the other voxels (and skips any other NaN), so a dead voxel never counts as a perfect
    or as a zero score.
    """
    rows = []
    for name, mask in roi_masks.items():
        vox = np.flatnonzero(np.asarray(mask))
        sub = voxel_table[voxel_table["voxel"].isin(vox)]
        for key, g in sub.groupby(list(by), sort=False):
            key = key if isinstance(key, tuple) else (key,)
            dead = g["cv_r2"].isna().to_numpy()
            live = g[~dead]
            rows.append({
                "roi": name, **dict(zip(by, key)), "n_voxels": len(g), "n_dead": int(dead.sum()),
                "mean_r": live["r"].mean(), "median_r": live["r"].median(), "mean_r2": live["r2"].mean(),
                "mean_cv_r2": live["cv_r2"].mean(), "mean_nc": live["nc"].mean(),
                "mean_score": live["score"].mean(), "median_score": live["score"].median(),
            })
    return pd.DataFrame(rows)


__all__ = ["noise_ceiling_from_ncsnr", "normalized_score", "pearson_r", "r2_score", "spearman_brown",
           "split_half_noise_ceiling", "split_half_reliability", "stack_repetitions", "summarize"]
