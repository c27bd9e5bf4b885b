"""Crossnobis RDMs from single trials: rsatoolbox's ``calc_rdm(..., method="crossnobis", cv_descriptor=...)``.

For folds k = 1..K (a label per trial) and conditions i, fold k's test pattern ``b_i^k`` is the mean of
condition i's trials in fold k and its training pattern ``a_i^k`` the mean of condition i's trials in all other
folds (every trial weighs the same, so a fold with more trials weighs more), and

    d_ij = mean_k (a_i^k - a_j^k) W (b_i^k - b_j^k)^T / n_channels

with W the noise precision (identity by default). Averaging fold means with equal weights instead, as a
fold-mean input to :func:`brainalign.rsa.compute_rdm` does without ``fold_counts``, is a different estimator
once K >= 3 folds hold unequal numbers of trials. Both depend on the trials only through the per-fold means
and counts, which is what :func:`fold_means` computes (in float64) and what the store's ``mean_by_fold``
returns, so the RSA stage reads fold means and counts from the stores and calls :func:`crossnobis_from_fold_means`.
See docs/rsa.md.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from .rdm import compute_rdm
from .tensors import as_numpy_for_torch


def fold_means(trials, conditions, folds):
    """Mean pattern and number of trials of every (fold, condition).

    Parameters
    ----------
    trials : array (n_trials, n_channels)
    conditions : array (n_trials,), condition label of each trial (any sortable type)
    folds : array (n_trials,), cross-validation fold label of each trial

    Returns
    -------
    condition_ids : ndarray (n_conditions,), sorted unique conditions (the RDM's order, as rsatoolbox's)
    fold_ids : ndarray (n_folds,), sorted unique folds
    means : float64 ndarray (n_folds, n_conditions, n_channels)
    counts : int64 ndarray (n_folds, n_conditions)

    Raises
    ------
    ValueError
        Mismatched lengths, fewer than 2 folds or conditions, or a condition with no trial in some fold.
    """
    x = np.asarray(as_numpy_for_torch(trials), dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"trials must be (n_trials, n_channels), got {x.shape}")
    conditions, folds = np.asarray(conditions), np.asarray(folds)
    if conditions.shape != (len(x),) or folds.shape != (len(x),):
        raise ValueError(f"conditions {conditions.shape} and folds {folds.shape} must be ({len(x)},), one per trial")
    cond_ids, cond = np.unique(conditions, return_inverse=True)
    fold_ids, fold = np.unique(folds, return_inverse=True)
    if len(fold_ids) < 2:
        raise ValueError(f"crossnobis needs at least 2 folds, got {len(fold_ids)}")
    if len(cond_ids) < 2:
        raise ValueError("an RDM needs at least 2 conditions")
    n_folds, n_cond = len(fold_ids), len(cond_ids)
    group = fold * n_cond + cond
    counts = np.bincount(group, minlength=n_folds * n_cond).reshape(n_folds, n_cond)
    if (counts == 0).any():
        k, i = np.argwhere(counts == 0)[0]
        raise ValueError(f"condition {cond_ids[i].item()!r} has no trial in fold {fold_ids[k].item()!r}; every "
                         f"condition needs a trial in every fold ({int((counts == 0).sum())} empty (fold, condition) "
                         "cells)")
    indicator = sparse.csr_matrix((np.ones(len(x)), (group, np.arange(len(x)))), shape=(n_folds * n_cond, len(x)))
    means = np.asarray(indicator @ x).reshape(n_folds, n_cond, -1) / counts[:, :, None]
    return cond_ids, fold_ids, means, counts.astype(np.int64)


def crossnobis_from_fold_means(means, counts, noise=None, block_size: int | None = None, device=None,
                               dtype=torch.float32):
    """Trial-level crossnobis RDM from per-fold means and their trial counts (e.g. a store's ``mean_by_fold``).

    Parameters
    ----------
    means : array (n_folds, n_conditions, n_channels), mean of each condition's trials in each fold
    counts : int array (n_folds, n_conditions), trials behind each mean (>= 1)
    noise : array (n_channels, n_channels), optional, noise precision W (identity if None)
    block_size, device, dtype : as :func:`brainalign.rsa.compute_rdms`

    Returns
    -------
    rdm : same kind as ``means``, (n_conditions*(n_conditions-1)/2,), equal to rsatoolbox's trial-level
        crossnobis of the trials behind the means
    """
    return compute_rdm(means, "crossnobis", noise=noise, block_size=block_size, device=device, dtype=dtype,
                       fold_counts=counts)


def crossnobis_rdm(trials, conditions, folds, noise=None, block_size: int | None = None, device=None,
                   dtype=torch.float32):
    """Crossnobis RDM of single trials, leave-one-fold-out over ``folds``.

    Equals ``rsatoolbox.rdm.calc_rdm(Dataset(trials, obs_descriptors={"c": conditions, "f": folds}),
    method="crossnobis", descriptor="c", cv_descriptor="f", noise=noise).get_vectors()[0]`` for any number of
    folds and trials per fold (see the module docstring).

    Parameters
    ----------
    trials : array (n_trials, n_channels)
    conditions : array (n_trials,), condition of each trial; the RDM's conditions are the sorted unique labels
    folds : array (n_trials,), fold of each trial; every condition needs a trial in every fold
    noise : array (n_channels, n_channels), optional, noise precision W (identity if None)
    block_size, device, dtype : as :func:`brainalign.rsa.compute_rdms`

    Returns
    -------
    rdm : numpy array (n_conditions*(n_conditions-1)/2,), ``dtype``'s numpy counterpart
    """
    _, _, means, counts = fold_means(trials, conditions, folds)
    return crossnobis_from_fold_means(means, counts, noise=noise, block_size=block_size, device=device, dtype=dtype)


__all__ = ["crossnobis_from_fold_means", "crossnobis_rdm", "fold_means"]
