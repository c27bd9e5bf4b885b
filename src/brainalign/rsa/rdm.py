"""Representational dissimilarity matrices, computed blockwise in torch and stored condensed.

Conventions follow rsatoolbox (``rsatoolbox.rdm.calc_rdm``):

- ``correlation``: ``1 - Pearson r`` between two condition patterns (over channels).
- ``euclidean``: squared Euclidean distance divided by the number of channels; with a
  ``noise`` precision matrix ``W`` this is rsatoolbox's ``mahalanobis``:
  ``(x_i - x_j) W (x_i - x_j)^T / n_channels``.
- ``crossnobis``: leave-one-fold-out cross-validated Mahalanobis distance,
  ``mean_k (mean_{l!=k} x_i^l - x_j^l) W (x_i^k - x_j^k)^T / n_channels``; unbiased, may be negative.

An RDM is returned as its condensed upper triangle (row-major, diagonal excluded, as
``scipy.spatial.distance.squareform`` and ``RDMs.get_vectors()``), length ``n*(n-1)/2``.
"""

from __future__ import annotations

import torch

from .condensed import n_pairs, row_start
from .options import RDM_METHODS as METHODS
from .tensors import as_tensor, like_input, small_work_threads

#: default number of float32 elements in one block of the (rows x columns) distance matrix
DEFAULT_BLOCK_ELEMENTS = 1 << 25


def _kernel_terms(x: torch.Tensor, method: str, noise: torch.Tensor | None):
    """Reduce every method to ``d_ij = scale * (g_i + g_j - 2 <L_i, R_j>)``.

    Parameters
    ----------
    x : tensor (batch, n_cond, n_chan), or (batch, n_folds, n_cond, n_chan) for crossnobis
    Returns
    -------
    left, right : tensor (batch, n_cond, m)
    g : tensor (batch, n_cond)
    scale : float
    """
    if method == "correlation":
        z = x - x.mean(dim=-1, keepdim=True)
        z = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)
        g = torch.ones(z.shape[:-1], dtype=z.dtype, device=z.device)
        return z, z, g, 0.5
    n_chan = x.shape[-1]
    if method == "euclidean":
        # distances are invariant to a common shift: centring over conditions keeps float32 accurate
        x = x - x.mean(dim=-2, keepdim=True)
        left = x if noise is None else x @ noise
        g = (left * x).sum(-1)
        return left, x, g, 1.0 / n_chan
    if method == "crossnobis":
        n_folds = x.shape[1]
        if n_folds < 2:
            raise ValueError("crossnobis needs at least 2 folds (axis -3)")
        x = x - x.mean(dim=-2, keepdim=True)  # per fold; differences within a fold are unchanged
        total = x.sum(dim=1)  # (batch, n_cond, n_chan)
        w = (lambda a: a) if noise is None else (lambda a: a @ noise)
        # sum_k (S - B_k) W B_k^T = S W S^T - sum_k B_k W B_k^T   (S = sum of folds)
        left = torch.cat([w(total)] + [-w(x[:, k]) for k in range(n_folds)], dim=-1)
        right = torch.cat([total] + [x[:, k] for k in range(n_folds)], dim=-1)
        norm = float(n_folds * (n_folds - 1))
        left = left / norm
        g = (left * right).sum(-1)
        return left, right, g, 1.0 / n_chan
    raise ValueError(f"unknown RDM method {method!r}; expected one of {METHODS}")


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


def _blockwise(left, right, g, scale, block_size, out_device, unit_diagonal=False):
    batch, n, width = left.shape
    out = torch.empty((batch, n_pairs(n)), dtype=left.dtype, device=out_device)
    rows = _block_rows(n, batch, width, block_size)
    for i0 in range(0, n - 1, rows):
        i1 = min(n - 1, i0 + rows)
        gram = torch.matmul(left[:, i0:i1], right[:, i0:].transpose(-1, -2))  # (batch, i1 - i0, n - i0)
        if unit_diagonal:  # correlation: d = 1 - <z_i, z_j>
            gram.neg_().add_(1.0)
        else:  # d = scale * (g_i + g_j - 2 <L_i, R_j>)
            gram.mul_(-2.0).add_(g[:, i0:i1, None]).add_(g[:, None, i0:]).mul_(scale)
        # row i of the block holds pairs (i, j > i) at columns j - i0: contiguous runs of the condensed vector
        dst = row_start(i0, n)
        for k in range(i1 - i0):
            m = n - i0 - k - 1
            out[:, dst:dst + m] = gram[:, k, k + 1:]
            dst += m
        del gram
    return out


def compute_rdms(patterns, method: str = "correlation", noise=None, block_size: int | None = None,
                 device=None, dtype=torch.float32):
    """Many RDMs at once (e.g. one per time point or per subject), computed blockwise.

    Parameters
    ----------
    patterns : array or tensor
        (batch, n_conditions, n_channels); for ``crossnobis`` (batch, n_folds, n_conditions, n_channels).
        For ``correlation``/``euclidean`` a 4-d input is averaged over folds first (rsatoolbox
        averages repeated measurements of a condition).
    method : {"correlation", "euclidean", "crossnobis"}
    noise : array (n_channels, n_channels), optional
        Noise precision matrix for ``euclidean`` (-> Mahalanobis) and ``crossnobis``; identity if None.
    block_size : int, optional
        Rows of the distance matrix computed per block (default: ~128 MiB per block, and for large
        products at most n/8 rows, >= 256, so that less of the lower triangle is computed).
    device : str or torch.device, optional
        Compute device; default: the tensor's own device, CUDA if available for numpy input.
    dtype : torch.dtype
        Compute dtype (float32 by default).

    Returns
    -------
    rdms : same kind as ``patterns`` (numpy array or tensor), (batch, n_conditions*(n_conditions-1)/2)
    """
    x = as_tensor(patterns, device=device, dtype=dtype)
    if method not in METHODS:
        raise ValueError(f"unknown RDM method {method!r}; expected one of {METHODS}")
    if method == "crossnobis":
        if x.ndim != 4:
            raise ValueError(f"crossnobis needs (batch, n_folds, n_conditions, n_channels), got {tuple(x.shape)}")
    else:
        if x.ndim == 4:
            x = x.mean(dim=1)
        if x.ndim != 3:
            raise ValueError(f"expected (batch, n_conditions, n_channels), got {tuple(x.shape)}")
    n_chan = x.shape[-1]
    w = None
    if noise is not None:
        if method == "correlation":
            raise ValueError("a noise precision matrix is only used by euclidean and crossnobis")
        w = as_tensor(noise, device=x.device, dtype=dtype)
        if w.shape != (n_chan, n_chan):
            raise ValueError(f"noise must be ({n_chan}, {n_chan}), got {tuple(w.shape)}")
    if x.shape[-2] < 2:
        raise ValueError("an RDM needs at least 2 conditions")
    # flops of the Gram products decide whether intra-op threads pay off
    with small_work_threads(x.numel() * x.shape[-2], x.device, threshold=1 << 28):
        left, right, g, scale = _kernel_terms(x, method, w)
        out = _blockwise(left, right, g, scale, block_size, x.device, unit_diagonal=method == "correlation")
    return like_input(out, patterns)


def compute_rdm(patterns, method: str = "correlation", noise=None, block_size: int | None = None,
                device=None, dtype=torch.float32):
    """One RDM from condition patterns, as a condensed upper triangle.

    Parameters
    ----------
    patterns : array or tensor
        (n_conditions, n_channels); or (n_folds, n_conditions, n_channels): folds/repetitions,
        cross-validated for ``crossnobis``, averaged for the other methods.
    method, noise, block_size, device, dtype : see :func:`compute_rdms`.

    Returns
    -------
    rdm : same kind as ``patterns``, (n_conditions*(n_conditions-1)/2,)
    """
    x = as_tensor(patterns, device=device, dtype=dtype)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected (n_conditions, n_channels) or (n_folds, n_conditions, n_channels), "
                         f"got {tuple(x.shape)}")
    if method == "crossnobis" and x.ndim != 3:
        raise ValueError("crossnobis needs (n_folds, n_conditions, n_channels)")
    out = compute_rdms(x[None], method=method, noise=noise, block_size=block_size, dtype=dtype)[0]
    return like_input(out, patterns)
