"""NSD's noise-ceiling SNR (ncsnr) per voxel and the noise ceiling of encoding scores derived from it.

(The RDM noise ceiling of RSA is :mod:`brainalign.rsa.noise_ceiling`; split-half reliability, for data
without ncsnr, is in :mod:`brainalign.encoding.scoring`.)

References: docs/datasets.md §1.4 (NSD recipe, as in NSD's export_noiseceiling.m) and
docs/methods.md §4.4 (Algonauts 2023 mixed-repetition formula).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .zscore import zscore_within_sessions


def ncsnr_from_betas(betas, stimuli, sessions=None, zscore=True, n_reps=3, split=None):
    """Noise-ceiling SNR per voxel, NSD recipe (datasets.md §1.4).

    1. z-score each voxel within each session (if ``zscore``); 2. keep stimuli with exactly
    ``n_reps`` trials and take each one's variance across its trials (ddof=1); 3. ``v = sqrt(mean
    variance)`` over those stimuli (NaN ignored); 4. ``ncsnr = sqrt(max(0, 1 - v**2)) / v``.

    A dead voxel, one whose values over the trials used are all equal (after z-scoring: constant within
    every session), has neither signal nor noise: its ncsnr is NaN (0 / 0), not the ``1 / 0 = inf`` of step 4,
    so it is excluded like any missing value rather than read as a perfect voxel (docs/encoding.md, "Scores").
    A voxel that varies but whose repetitions agree exactly (v = 0) keeps ncsnr = inf (noise-free).

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
    float32 (n_voxels,); NaN for dead voxels
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
    out[np.ptp(x, axis=0) == 0] = np.nan  # dead voxel: all used trials equal
    return out.astype(np.float32)


def noise_ceiling_from_ncsnr(ncsnr, n, percent=False):
    """Noise ceiling for responses averaged over ``n`` trials.

    ``NC = ncsnr**2 / (ncsnr**2 + A)`` with ``A = 1/n`` (NSD) or, for test images with mixed
    repetition counts, ``A = mean over images of 1/n_i`` = ``(n3/3 + n2/2 + n1/1) / (n3 + n2 + n1)``
    (Algonauts 2023). ``ncsnr = inf`` (noise-free) gives NC = 1 (100 %), its limit; NaN (dead voxel) gives NaN.

    Parameters
    ----------
    ncsnr : float array (n_voxels,)
    n : int or int array (n_images,)
        Repetitions averaged (one number, or one per test image), each >= 1.
    percent : bool
        Return percent (NSD papers) instead of a fraction (Algonauts).

    Returns
    -------
    float64 ndarray like ``ncsnr``

    Raises
    ------
    ValueError
        If a repetition count is below 1.
    """
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 1):
        raise ValueError("repetition counts must be >= 1")
    a = float(np.mean(1.0 / n))
    s2 = np.asarray(ncsnr, dtype=np.float64) ** 2
    with np.errstate(invalid="ignore"):
        nc = s2 / (s2 + a)
    nc = np.where(np.isposinf(s2), 1.0, nc)[()]  # inf / inf: the limit, 1
    return 100.0 * nc if percent else nc


__all__ = ["ncsnr_from_betas", "noise_ceiling_from_ncsnr"]
