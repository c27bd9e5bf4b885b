"""Representational dissimilarity matrices, computed blockwise in torch and stored condensed.

Conventions follow rsatoolbox (``rsatoolbox.rdm.calc_rdm``):

- ``correlation``: ``1 - Pearson r`` between two condition patterns (over channels).
- ``euclidean``: squared Euclidean distance divided by the number of channels; with a
  ``noise`` precision matrix ``W`` this is rsatoolbox's ``mahalanobis``:
  ``(x_i - x_j) W (x_i - x_j)^T / n_channels``.
- ``crossnobis``: leave-one-fold-out cross-validated Mahalanobis distance,
  ``mean_k (a_i^k - a_j^k) W (x_i^k - x_j^k)^T / n_channels`` with ``x^k`` the mean of fold k and ``a^k`` the
  mean of the trials outside fold k (``fold_counts`` weigh the other folds by their trials; without them
  they weigh equally); unbiased, may be negative. Trial-level entry point: :mod:`brainalign.rsa.crossnobis`.

Accuracy: the terms are centred (and for ``correlation`` normalised) in float64 before the Gram products in
``dtype`` (float32 by default), so a large common offset or nearly identical patterns keep float32 accuracy.

An RDM is returned as its condensed upper triangle (row-major, diagonal excluded, as
``scipy.spatial.distance.squareform`` and ``RDMs.get_vectors()``), length ``n*(n-1)/2``.
"""

from __future__ import annotations

import torch

from .condensed import n_pairs, row_start
from .options import RDM_METHODS as METHODS
from .tensors import as_numpy_for_torch, as_tensor, like_input, small_work_threads

#: default number of float32 elements in one block of the (rows x columns) distance matrix
DEFAULT_BLOCK_ELEMENTS = 1 << 25


def _kernel_terms(x: torch.Tensor, method: str, noise: torch.Tensor | None, fold_counts: torch.Tensor | None,
                  dtype: torch.dtype):
    """Reduce every method to ``d_ij = scale * (g_i + g_j - 2 <L_i, R_j>)``.

    The terms are formed in float64 and centred so that they are small (the distances are invariant to the
    shift removed), then cast to the compute ``dtype`` for the Gram products: a large common offset or nearly
    identical patterns then cost no float32 accuracy (docs/rsa.md, "Edge cases").

    Parameters
    ----------
    x : float64 tensor (batch, n_cond, n_chan), or (batch, n_folds, n_cond, n_chan) for crossnobis
    noise : float64 tensor (n_chan, n_chan) or None
    fold_counts : float64 tensor (n_folds, n_cond) or None (crossnobis: trials behind each fold mean)
    dtype : compute dtype of the returned terms

    Returns
    -------
    left, right : tensor (batch, n_cond, m)
    g : tensor (batch, n_cond)
    scale : float
    """
    if method == "correlation":
        z = x - x.mean(dim=-1, keepdim=True)
        z = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)
        # 1 - <z_i, z_j> = |z_i - z_j|^2 / 2: centring the unit patterns over conditions keeps small distances
        # accurate (a constant pattern's NaN row stays its own)
        z = z - torch.nanmean(z, dim=-2, keepdim=True)
        g = (z * z).sum(-1)
        z = z.to(dtype)
        return z, z, g.to(dtype), 0.5
    n_chan = x.shape[-1]
    if method == "euclidean":
        x = x - x.mean(dim=-2, keepdim=True)  # distances are invariant to a common shift
        left = x if noise is None else x @ noise
        g = (left * x).sum(-1)
        return left.to(dtype), x.to(dtype), g.to(dtype), 1.0 / n_chan
    if method == "crossnobis":
        if x.shape[1] < 2:
            raise ValueError("crossnobis needs at least 2 folds (axis -3)")
        if fold_counts is not None and not bool((fold_counts == fold_counts[:1]).all()):
            return _crossnobis_weighted_terms(x, noise, fold_counts, dtype)
        return _crossnobis_equal_terms(x, noise, dtype)
    raise ValueError(f"unknown RDM method {method!r}; expected one of {METHODS}")


def _crossnobis_equal_terms(x, noise, dtype):
    """Crossnobis when every fold of a condition weighs the same: ``mean_{l!=k} x^l`` is ``(S - x^k) / (K - 1)``.

    ``sum_k (S - B_k) W B_k^T = S W S^T - sum_k B_k W B_k^T`` (S = sum of folds): width (K + 1) n_chan.
    """
    batch, n_folds, n_cond, n_chan = x.shape
    x = x - x.mean(dim=-2, keepdim=True)  # per fold: every training mean shifts alike, differences unchanged
    w = (lambda a: a) if noise is None else (lambda a: a @ noise)
    norm = float(n_folds * (n_folds - 1))
    left = torch.empty((batch, n_cond, (n_folds + 1) * n_chan), dtype=dtype, device=x.device)
    right = torch.empty_like(left)
    total = x.sum(dim=1)  # (batch, n_cond, n_chan)
    piece = w(total) / norm
    g = (piece * total).sum(-1)
    left[..., :n_chan], right[..., :n_chan] = piece, total
    for k in range(n_folds):
        cols = slice((k + 1) * n_chan, (k + 2) * n_chan)
        piece = -w(x[:, k]) / norm
        g += (piece * x[:, k]).sum(-1)
        left[..., cols], right[..., cols] = piece, x[:, k]
    return left, right, g.to(dtype), 1.0 / n_chan


def _crossnobis_weighted_terms(x, noise, fold_counts, dtype):
    """Crossnobis with unequal trials per fold, as rsatoolbox's trial-level ``calc_rdm_crossnobis``.

    Fold k's training pattern is the mean of all trials outside fold k, ``a^k = sum_{l!=k} n_l x^l / sum_{l!=k} n_l``
    (per condition), its test pattern ``b^k = x^k``, and ``d_ij = mean_k (a_i^k - a_j^k) W (b_i^k - b_j^k)^T / n_chan``.
    The cross term is made symmetric, ``<[a_i W, b_i W^T], [b_j, a_j]> / 2``: width 2 K n_chan.
    """
    batch, n_folds, n_cond, n_chan = x.shape
    # one shift for all folds and conditions: the trial-weighted training means move with it exactly
    x = x - x.mean(dim=(-3, -2), keepdim=True)
    n = fold_counts.to(device=x.device, dtype=x.dtype)[None, :, :, None]  # (1, K, n_cond, 1)
    weighted = (n * x).sum(dim=1)  # (batch, n_cond, n_chan)
    n_total = n.sum(dim=1)
    left = torch.empty((batch, n_cond, 2 * n_folds * n_chan), dtype=dtype, device=x.device)
    right = torch.empty_like(left)
    g = torch.zeros((batch, n_cond), dtype=x.dtype, device=x.device)
    for k in range(n_folds):
        train = (weighted - n[:, k] * x[:, k]) / (n_total - n[:, k])
        test = x[:, k]
        train_w = train if noise is None else train @ noise
        test_w = test if noise is None else test @ noise.T
        g += (train_w * test).sum(-1)
        a, b = slice(2 * k * n_chan, (2 * k + 1) * n_chan), slice((2 * k + 1) * n_chan, (2 * k + 2) * n_chan)
        left[..., a], right[..., a] = train_w / 2.0, test
        left[..., b], right[..., b] = test_w / 2.0, train
    return left, right, g.to(dtype), 1.0 / (n_folds * n_chan)


def _block_rows(n: int, batch: int, width: int, block_size: int | None) -> int:
    """Rows of the distance matrix per block.

    Each block multiplies its rows only with the columns from its first row on, so smaller blocks skip more
    of the lower triangle (rows n/8: ~56 % of the full product instead of 100 %), while the block stays big
    enough for an efficient matrix product (>= 256 rows) and within ~DEFAULT_BLOCK_ELEMENTS of memory.
    """
    if block_size is not None:
        return max(1, int(block_size))
    by_memory = max(1, DEFAULT_BLOCK_ELEMENTS // max(1, batch * n))
    if n * n * width * batch < (1 << 30):  # small products: one block, no per-block overhead
        return by_memory
    return max(1, min(by_memory, max(256, -(-n // 8))))


def _blockwise(left, right, g, scale, block_size, out_device):
    batch, n, width = left.shape
    out = torch.empty((batch, n_pairs(n)), dtype=left.dtype, device=out_device)
    rows = _block_rows(n, batch, width, block_size)
    for i0 in range(0, n - 1, rows):
        i1 = min(n - 1, i0 + rows)
        gram = torch.matmul(left[:, i0:i1], right[:, i0:].transpose(-1, -2))  # (batch, i1 - i0, n - i0)
        gram.mul_(-2.0).add_(g[:, i0:i1, None]).add_(g[:, None, i0:]).mul_(scale)  # scale (g_i + g_j - 2 <L_i, R_j>)
        # row i of the block holds pairs (i, j > i) at columns j - i0: contiguous runs of the condensed vector
        dst = row_start(i0, n)
        for k in range(i1 - i0):
            m = n - i0 - k - 1
            out[:, dst:dst + m] = gram[:, k, k + 1:]
            dst += m
        del gram
    return out


def compute_rdms(patterns, method: str = "correlation", noise=None, block_size: int | None = None,
                 device=None, dtype=torch.float32, fold_counts=None):
    """Many RDMs at once (e.g. one per time point or per subject), computed blockwise.

    Parameters
    ----------
    patterns : array or tensor
        (batch, n_conditions, n_channels); for ``crossnobis`` (batch, n_folds, n_conditions, n_channels).
        For ``correlation``/``euclidean`` a 4-d input is averaged over folds first (rsatoolbox
        averages repeated measurements of a condition). Any numpy layout and dtype.
    method : {"correlation", "euclidean", "crossnobis"}
    noise : array (n_channels, n_channels), optional
        Noise precision matrix for ``euclidean`` (-> Mahalanobis) and ``crossnobis``; identity if None.
    block_size : int, optional
        Rows of the distance matrix computed per block (default: ~128 MiB per block, and for large
        products at most n/8 rows, >= 256, so that less of the lower triangle is computed).
    device : str or torch.device, optional
        Compute device; default: the tensor's own device, CUDA if available for numpy input.
    dtype : torch.dtype
        Dtype of the Gram products and of the result (float32 by default). Patterns are centred (and for
        ``correlation`` normalised) in float64 first.
    fold_counts : int array (n_folds, n_conditions), optional
        ``crossnobis`` only: trials averaged into each fold pattern. Fold k's training pattern is then the mean
        of all trials outside fold k (rsatoolbox's trial-level ``calc_rdm(..., cv_descriptor=...)``, see
        :func:`brainalign.rsa.crossnobis_rdm`); without it every fold weighs the same, which is the same
        estimator when the folds hold equally many trials of each condition.

    Returns
    -------
    rdms : same kind as ``patterns`` (numpy array or tensor), (batch, n_conditions*(n_conditions-1)/2)
    """
    if method not in METHODS:
        raise ValueError(f"unknown RDM method {method!r}; expected one of {METHODS}")
    x = as_tensor(patterns, device=device, dtype=torch.float64)
    if method == "crossnobis":
        if x.ndim != 4:
            raise ValueError(f"crossnobis needs (batch, n_folds, n_conditions, n_channels), got {tuple(x.shape)}")
    else:
        if fold_counts is not None:
            raise ValueError("fold_counts is only used by crossnobis")
        if x.ndim == 4:
            x = x.mean(dim=1)
        if x.ndim != 3:
            raise ValueError(f"expected (batch, n_conditions, n_channels), got {tuple(x.shape)}")
    n_chan = x.shape[-1]
    w = None
    if noise is not None:
        if method == "correlation":
            raise ValueError("a noise precision matrix is only used by euclidean and crossnobis")
        w = as_tensor(noise, device=x.device, dtype=torch.float64)
        if w.shape != (n_chan, n_chan):
            raise ValueError(f"noise must be ({n_chan}, {n_chan}), got {tuple(w.shape)}")
    if x.shape[-2] < 2:
        raise ValueError("an RDM needs at least 2 conditions")
    counts = None
    if fold_counts is not None:
        counts = as_tensor(fold_counts, device=x.device, dtype=torch.float64)
        if counts.shape != x.shape[1:3]:
            raise ValueError(f"fold_counts must be (n_folds, n_conditions) = {tuple(x.shape[1:3])}, "
                             f"got {tuple(counts.shape)}")
        if not bool((counts >= 1).all()):
            raise ValueError("fold_counts must be >= 1: every fold needs a trial of every condition")
    # flops of the Gram products decide whether intra-op threads pay off
    with small_work_threads(x.numel() * x.shape[-2], x.device, threshold=1 << 28):
        left, right, g, scale = _kernel_terms(x, method, w, counts, dtype)
        del x
        out = _blockwise(left, right, g, scale, block_size, left.device)
    return like_input(out, patterns)


def compute_rdm(patterns, method: str = "correlation", noise=None, block_size: int | None = None,
                device=None, dtype=torch.float32, fold_counts=None):
    """One RDM from condition patterns, as a condensed upper triangle.

    Parameters
    ----------
    patterns : array or tensor
        (n_conditions, n_channels); or (n_folds, n_conditions, n_channels): folds/repetitions,
        cross-validated for ``crossnobis``, averaged for the other methods.
    method, noise, block_size, device, dtype : see :func:`compute_rdms`.
    fold_counts : int array (n_folds, n_conditions), optional; see :func:`compute_rdms`.

    Returns
    -------
    rdm : same kind as ``patterns``, (n_conditions*(n_conditions-1)/2,)
    """
    x = patterns if isinstance(patterns, torch.Tensor) else as_numpy_for_torch(patterns)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected (n_conditions, n_channels) or (n_folds, n_conditions, n_channels), "
                         f"got {tuple(x.shape)}")
    if method == "crossnobis" and x.ndim != 3:
        raise ValueError("crossnobis needs (n_folds, n_conditions, n_channels)")
    return compute_rdms(x[None], method=method, noise=noise, block_size=block_size, device=device, dtype=dtype,
                        fold_counts=fold_counts)[0]
