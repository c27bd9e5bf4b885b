"""Condensed RDMs (upper triangle without the diagonal, row-major as scipy's ``squareform``): sizes and indexing."""

from __future__ import annotations

import numpy as np
import torch


def n_pairs(n_conditions: int) -> int:
    """Length of a condensed RDM (upper triangle without diagonal) for ``n_conditions``."""
    return n_conditions * (n_conditions - 1) // 2


def n_conditions_from_pairs(n_pairs_: int) -> int:
    """Inverse of :func:`n_pairs`; raises ValueError if ``n_pairs_`` is not triangular."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs_)) / 2))
    if n * (n - 1) // 2 != n_pairs_:
        raise ValueError(f"{n_pairs_} is not the length of a condensed RDM (n*(n-1)/2)")
    return n


def row_start(i, n: int):
    """Condensed index of pair (i, i+1): entries of row i (j > i) follow contiguously."""
    return i * n - i * (i + 1) // 2


def condensed_index(i, j, n: int):
    """Condensed index of pair (i, j) with i < j (numpy or torch integer arrays)."""
    return row_start(i, n) + (j - i - 1)


def condensed_subset(vectors, conditions, n: int):
    """Condensed RDMs restricted to a subset of their conditions.

    Parameters
    ----------
    vectors : ndarray (..., n*(n-1)/2)
    conditions : int array (m,), increasing condition indices in ``[0, n)``
    n : int, number of conditions of ``vectors``

    Returns
    -------
    ndarray (..., m*(m-1)/2), contiguous
    """
    c = np.asarray(conditions, dtype=np.int64)
    ia, ib = np.triu_indices(len(c), k=1)
    return np.ascontiguousarray(np.asarray(vectors)[..., condensed_index(c[ia], c[ib], n)])


def square_to_condensed(matrix):
    """(..., n, n) symmetric matrices -> (..., n*(n-1)/2) upper triangles (row-major, as scipy)."""
    if isinstance(matrix, torch.Tensor):
        n = matrix.shape[-1]
        iu = torch.triu_indices(n, n, offset=1, device=matrix.device)
        return matrix[..., iu[0], iu[1]]
    matrix = np.asarray(matrix)
    iu = np.triu_indices(matrix.shape[-1], k=1)
    return matrix[..., iu[0], iu[1]]


def condensed_to_square(vectors, diagonal: float = 0.0):
    """(..., n*(n-1)/2) condensed RDMs -> (..., n, n) symmetric matrices with ``diagonal`` on the diagonal."""
    is_t = isinstance(vectors, torch.Tensor)
    v = vectors if is_t else torch.as_tensor(np.asarray(vectors))
    n = n_conditions_from_pairs(v.shape[-1])
    out = torch.full(v.shape[:-1] + (n, n), diagonal, dtype=v.dtype, device=v.device)
    iu = torch.triu_indices(n, n, offset=1, device=v.device)
    out[..., iu[0], iu[1]] = v
    out[..., iu[1], iu[0]] = v
    return out if is_t else out.numpy()
