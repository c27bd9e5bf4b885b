"""Bootstrap confidence intervals over stimuli (conditions) and over subjects."""

from __future__ import annotations

import numpy as np
import torch

from .condensed import condensed_index, n_conditions_from_pairs
from .compare import _as_float_tensor, compare_rdms
from .noise_ceiling import noise_ceiling


def bootstrap_pair_index(sample: np.ndarray, n_conditions: int) -> np.ndarray:
    """Condensed indices of a bootstrap sample's RDM, duplicate pairs dropped.

    The resampled conditions are sorted; every pair (a < b) of sample positions whose
    conditions differ maps to the original condensed entry. Pairs of a condition with its own
    copy (the off-diagonal zeros of a resampled RDM) are dropped, as rsatoolbox marks them NaN
    and excludes them.

    Parameters
    ----------
    sample : int array (n_sample,), condition indices drawn with replacement
    n_conditions : int

    Returns
    -------
    index : int64 array (n_kept_pairs,)
    """
    s = np.sort(np.asarray(sample))
    ia, ib = np.triu_indices(len(s), k=1)
    ci, cj = s[ia], s[ib]
    keep = ci != cj
    return condensed_index(ci[keep].astype(np.int64), cj[keep].astype(np.int64), n_conditions)


def bootstrap_stimuli(model_rdms, data_rdms, method: str = "spearman", n_boot: int = 1000, seed: int = 0,
                      with_noise_ceiling: bool = False, device=None):
    """Bootstrap distribution of model-vs-data similarities, resampling conditions.

    Parameters
    ----------
    model_rdms : array (..., n_entries)  e.g. (n_layers, P)
    data_rdms : array (..., n_entries)   e.g. (n_subjects, P)
    method : comparison method (see :func:`brainalign.rsa.compare_rdms`)
    n_boot : number of bootstrap samples
    seed : seed of the numpy generator
    with_noise_ceiling : also return the noise ceiling of ``data_rdms`` (2-d: subjects x P) per sample

    Returns
    -------
    sims : numpy float64 (n_boot, *model.shape[:-1], *data.shape[:-1])
    ceilings : numpy float64 (n_boot, 2) [lower, upper], only if ``with_noise_ceiling``
    """
    ta = _as_float_tensor(model_rdms, device)
    tb = _as_float_tensor(data_rdms, ta.device)
    n = n_conditions_from_pairs(ta.shape[-1])
    rng = np.random.default_rng(seed)
    sims, ceilings = [], []
    for _ in range(n_boot):
        idx = torch.as_tensor(bootstrap_pair_index(rng.integers(0, n, size=n), n), device=ta.device)
        a, b = ta[..., idx], tb[..., idx]
        sims.append(np.asarray(torch.as_tensor(compare_rdms(a, b, method)).cpu()))
        if with_noise_ceiling:
            nc = noise_ceiling(b.reshape(-1, b.shape[-1]), method)
            ceilings.append((nc.lower, nc.upper))
    sims = np.stack(sims) if sims else np.empty((0,) + tuple(ta.shape[:-1]) + tuple(tb.shape[:-1]))
    if with_noise_ceiling:
        return sims, np.asarray(ceilings, dtype=float).reshape(-1, 2)
    return sims


def bootstrap_subjects(values, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of the mean over subjects (axis 0), resampling subjects.

    Parameters
    ----------
    values : array (n_subjects, ...)

    Returns
    -------
    means : numpy float64 (n_boot, ...)
    """
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, v.shape[0], size=(n_boot, v.shape[0]))
    return v[picks].mean(axis=1)


def confidence_interval(samples, level: float = 0.95):
    """Percentile interval along axis 0 of bootstrap samples (NaNs ignored).

    Returns
    -------
    low, high : arrays shaped ``samples.shape[1:]``
    """
    s = np.asarray(samples, dtype=float)
    tail = (1.0 - level) / 2.0 * 100.0
    return np.nanpercentile(s, tail, axis=0), np.nanpercentile(s, 100.0 - tail, axis=0)
