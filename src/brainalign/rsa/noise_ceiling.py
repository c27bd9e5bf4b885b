"""Noise ceilings for RDM comparisons (rsatoolbox ``boot_noise_ceiling`` definitions).

For subject RDMs ``r_1..r_S`` and a comparison method, each RDM is first normalised the way
rsatoolbox's ``pool_rdm`` does for that method (ranks for spearman/tau-a, z-scores for corr,
unit RMS for cosine) and averaged:

- lower bound = mean over s of ``compare(pool(r without s), r_s)`` (leave-one-subject-out),
- upper bound = mean over s of ``compare(pool(all r), r_s)``.

A subject whose RDM carries no information for the method (constant for spearman, corr and tau-a; all zero for
cosine) is left out of both bounds with a warning, and its per-subject terms are NaN: rsatoolbox raises for
such a subject (corr) or lets it pull both bounds towards 0 (the others), and pooling it would spread its NaN
z-scores to every subject. With fewer than 2 informative subjects both bounds are NaN (docs/rsa.md, "Edge cases").
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch

from .compare import METHODS, _as_float_tensor, compare_paired, constant_rows, rank_transform


class NoiseCeiling(NamedTuple):
    """Lower and upper noise-ceiling bounds, plus the per-subject terms they average."""

    lower: float
    upper: float
    lower_per_subject: np.ndarray
    upper_per_subject: np.ndarray


def _normalise_for_pooling(v: torch.Tensor, method: str) -> torch.Tensor:
    v = v.to(torch.float64)
    if method in ("spearman", "tau-a"):
        return rank_transform(v)
    if method == "corr":
        v = v - v.mean(dim=-1, keepdim=True)
        return v / v.std(dim=-1, correction=0, keepdim=True)
    if method == "cosine":
        return v / torch.sqrt((v ** 2).mean(dim=-1, keepdim=True))
    raise ValueError(f"unknown comparison method {method!r}; expected one of {METHODS}")


def pool_rdms(rdms, method: str = "spearman"):
    """Average of RDMs after the per-method normalisation of rsatoolbox ``pool_rdm``.

    Parameters
    ----------
    rdms : array or tensor (n_rdms, n_entries), NaN-free

    Returns
    -------
    pooled : numpy float64 (n_entries,)
    """
    v = _as_float_tensor(rdms, "cpu")
    pooled = _normalise_for_pooling(v, method).mean(0)
    if method == "corr":
        pooled = pooled - pooled.min()
    return pooled.numpy()


def noise_ceiling(subject_rdms, method: str = "spearman", device=None) -> NoiseCeiling:
    """Lower/upper noise ceiling of a set of subject RDMs.

    Parameters
    ----------
    subject_rdms : array or tensor (n_subjects, n_entries)
        Condensed RDMs of the same conditions, one per subject (n_subjects >= 2).
        Columns with a NaN in any subject are dropped.
    method : {"spearman", "corr", "cosine", "tau-a"}

    Returns
    -------
    NoiseCeiling(lower, upper, lower_per_subject (n_subjects,), upper_per_subject (n_subjects,))
        Subjects with an uninformative RDM (constant; all zero for cosine) are left out with a
        ``RuntimeWarning`` and get NaN per-subject terms; with fewer than 2 others left, all values are NaN.
    """
    if method not in METHODS:
        raise ValueError(f"unknown comparison method {method!r}; expected one of {METHODS}")
    v = _as_float_tensor(subject_rdms, device).to(torch.float64)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"noise ceiling needs (n_subjects >= 2, n_entries), got {tuple(v.shape)}")
    keep = ~torch.isnan(v).any(0)
    v = v[:, keep]
    n_subjects = v.shape[0]
    degenerate = (~(v != 0).any(1) if method == "cosine" else constant_rows(v)).cpu().numpy()
    lower = np.full(n_subjects, np.nan)
    upper = np.full(n_subjects, np.nan)
    if degenerate.any():
        what = "all zero" if method == "cosine" else "constant"
        left = int((~degenerate).sum())
        warnings.warn(f"noise ceiling ({method}): the RDMs of subjects {np.flatnonzero(degenerate).tolist()} "
                      f"(0-based) are {what} over the {v.shape[1]} used entries and are left out"
                      + ("" if left >= 2 else f"; {left} subject left, so the ceiling is NaN"),
                      RuntimeWarning, stacklevel=2)
        if left < 2:
            return NoiseCeiling(np.nan, np.nan, lower, upper)
        v = v[torch.as_tensor(~degenerate, device=v.device)]
    n = v.shape[0]
    normed = _normalise_for_pooling(v, method)
    total = normed.sum(0, keepdim=True)
    others = (total - normed) / (n - 1)  # (n, P): pool of all subjects but s
    everyone = (total / n).expand_as(normed)
    lower[~degenerate] = np.asarray(compare_paired(others, v, method).cpu())
    upper[~degenerate] = np.asarray(compare_paired(everyone.contiguous(), v, method).cpu())
    return NoiseCeiling(float(np.nanmean(lower)), float(np.nanmean(upper)), lower, upper)
