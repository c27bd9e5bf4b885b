"""Comparing condensed RDMs: Spearman (default), Pearson, cosine, Kendall tau-a, many-vs-many at once.

Definitions follow ``rsatoolbox.rdm.compare``: ``spearman`` = Pearson correlation of
average ranks (ties get their mean rank), ``corr`` = Pearson correlation, ``cosine`` = cosine
similarity, ``tau-a`` = Kendall's tau-a, ``(concordant - discordant) / (P (P - 1) / 2)``.
Entries that are NaN in any input vector are excluded from every comparison (as rsatoolbox does).

Degenerate vectors (docs/rsa.md, "Edge cases"): ``spearman`` and ``corr`` with a constant vector (all entries
equal) and ``cosine`` with an all-zero vector are NaN for every vector length (0 / 0: undefined, as
``scipy.stats.pearsonr``; rsatoolbox returns 0 only when its centring happens to cancel exactly). ``tau-a`` with a
constant vector is 0: it has no concordant or discordant pairs, a defined value (rsatoolbox agrees).

The vectors of each side are transformed once (ranked, centred, unit-normalised, kept in
float32) and all pairs are then a single matrix product accumulated in float64 over chunks of
entries, so "5 layers x 8 ROIs x 10 subjects" is one call.
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.stats
import torch

from .options import COMPARISON_METHODS as METHODS
from .tensors import as_tensor, like_input, small_work_threads

_RANK_CHUNK_ELEMENTS = 1 << 22
_DOT_CHUNK = 1 << 20


def _sorted_keys(x: np.ndarray) -> np.ndarray:
    """Sort every row of a float32 matrix, keeping each entry's column: int64 keys, sorted along rows.

    key = (order-preserving int32 image of the value) << 32 | column. Sorting int64 keys is several times
    faster than ``argsort`` of the values (no index indirection, cache friendly), and the column of the
    k-th smallest value is ``key & 0xFFFFFFFF``. ``-0.0`` is mapped to ``+0.0`` so that they tie.

    Parameters
    ----------
    x : float32 ndarray (n_rows, p), NaN-free, p < 2**32

    Returns
    -------
    keys : int64 ndarray (n_rows, p), each row ascending
    """
    bits = (x + np.float32(0.0)).view(np.int32)  # a fresh array: modified in place below
    bits ^= (bits >> 31) & np.int32(0x7FFFFFFF)  # negative floats: reverse the magnitude order
    keys = bits.astype(np.int64)
    del bits
    keys <<= 32
    keys |= np.arange(x.shape[1], dtype=np.int64)
    keys.sort(axis=1)
    return keys


def _sorted_ranks(x: np.ndarray):
    """Column order of each sorted row, and its sorted values (float32 via packed keys, else argsort)."""
    if x.dtype != np.float32:
        order = np.argsort(x, axis=1)
        return order, np.take_along_axis(x, order, axis=1)
    keys = _sorted_keys(x)
    if sys.byteorder == "little" and x.shape[1] < 2 ** 31:  # int32 views of the two halves: no copies
        halves = keys.view(np.int32).reshape(keys.shape + (2,))
        return halves[..., 0], halves[..., 1]
    return keys & 0xFFFFFFFF, keys >> 32


def _scatter_rows(out: np.ndarray, order: np.ndarray, src) -> None:
    """``out[r, order[r, k]] = src[r, k]`` (``src`` broadcastable to ``out``); torch's scatter is the fastest."""
    src_t = torch.from_numpy(np.ascontiguousarray(src)) if np.ndim(src) == out.ndim else torch.from_numpy(src)
    torch.from_numpy(out).scatter_(1, torch.from_numpy(order.astype(np.int64)), src_t.expand(out.shape))


#: fraction of tied neighbours above which ties are handled on whole arrays rather than tied entries only
_DENSE_TIES = 0.01


def _tie_groups(dup: np.ndarray):
    """Sparse view of the ties of row-sorted values: only the tied entries (few in continuous RDMs).

    Parameters
    ----------
    dup : bool (n_rows, p - 1), ``dup[r, c]``: sorted entries c and c + 1 of row r are equal

    Returns
    -------
    tied : int64 (m,), flat (row-major) sorted positions of the tied entries
    mean_pos : float64 (m,), mean 0-based sorted position of each entry's tie group
    group_rows : int64 (g,), row of each tie group
    group_sizes : int64 (g,)
    """
    n_rows, p = dup.shape[0], dup.shape[1] + 1
    in_group = np.zeros((n_rows, p), dtype=bool)
    in_group[:, 1:] = dup
    in_group[:, :-1] |= dup
    tied = np.flatnonzero(in_group)
    del in_group
    row, col = np.divmod(tied, p)
    continues = np.zeros(len(tied), dtype=bool)  # tied to its left neighbour: not the first of its group
    inner = col > 0
    continues[inner] = dup.ravel()[row[inner] * (p - 1) + col[inner] - 1]
    first = ~continues
    group = np.cumsum(first) - 1
    sizes = np.bincount(group)
    mean_pos = (col[first] + (sizes - 1) / 2.0)[group]
    return tied, mean_pos, row[first], sizes


def _all_groups(dup: np.ndarray):
    """Dense view: every run of equal sorted values (singletons included), over the flattened rows.

    Returns
    -------
    first : int64 (g,), flat sorted position of each group's first entry
    sizes : int64 (g,)
    """
    n_rows, p = dup.shape[0], dup.shape[1] + 1
    starts = np.ones((n_rows, p), dtype=bool)
    np.logical_not(dup, out=starts[:, 1:])
    first = np.flatnonzero(starts)
    return first, np.diff(np.append(first, n_rows * p))


def _rank_rows_numpy(x: np.ndarray) -> np.ndarray:
    """Average ranks (float64, 1-based; ties get their mean rank) of each row, vectorised over rows."""
    n_rows, p = x.shape
    order, vals = _sorted_ranks(x)
    dup = vals[:, 1:] == vals[:, :-1]
    del vals
    n_dup = np.count_nonzero(dup)
    out = np.empty((n_rows, p), dtype=np.float64)
    if n_dup > _DENSE_TIES * dup.size:  # many ties (large float32 RDMs): mean rank of every group, in order
        first, sizes = _all_groups(dup)
        _scatter_rows(out, order, np.repeat(first % p + (sizes + 1) / 2.0, sizes).reshape(n_rows, p))
        return out
    _scatter_rows(out, order, np.arange(1.0, p + 1.0))
    if n_dup:
        tied, mean_pos = _tie_groups(dup)[:2]
        out.ravel()[(tied // p) * p + order.ravel()[tied]] = mean_pos + 1.0
    return out


def _spearman_rows_numpy(x: np.ndarray) -> np.ndarray:
    """Centred, unit-norm average ranks of each row as float32: Spearman's r is then a dot product.

    Ranks are centred by their mean (p + 1) / 2 (exact, ties included) and divided by the row's norm,
    ``sqrt(p (p^2 - 1) / 12 - sum_groups (t^3 - t) / 12)`` (t = tie-group sizes). Without ties every row is
    one precomputed vector scattered into place; with few ties that vector is rescaled and the tied entries
    set to their group's mean; with many (large float32 RDMs) the sorted values are built group by group.
    Constant rows give NaN.
    """
    n_rows, p = x.shape
    order, vals = _sorted_ranks(x)
    dup = vals[:, 1:] == vals[:, :-1]
    del vals
    n_dup = np.count_nonzero(dup)
    norm0 = np.sqrt(p * (p * p - 1.0) / 12.0)
    out = np.empty((n_rows, p), dtype=np.float32)
    if n_dup > _DENSE_TIES * dup.size:
        first, sizes = _all_groups(dup)
        t = sizes.astype(np.float64)
        group_rows = first // p
        norm = np.sqrt(np.maximum(norm0 ** 2 - np.bincount(group_rows, (t ** 3 - t) / 12.0, minlength=n_rows), 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            values = ((first % p + (t - 1) / 2.0 - (p - 1) / 2.0) / norm[group_rows]).astype(np.float32)
        _scatter_rows(out, order, np.repeat(values, sizes).reshape(n_rows, p))
        out[norm == 0] = np.nan  # constant rows: correlation undefined
        return out
    centred = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
    plain = (centred / norm0).astype(np.float32) if p > 1 else np.full(p, np.nan, np.float32)
    _scatter_rows(out, order, plain)
    if not n_dup:
        return out
    tied, mean_pos, group_rows, sizes = _tie_groups(dup)
    t = sizes.astype(np.float64)
    norm = np.sqrt(np.maximum(norm0 ** 2 - np.bincount(group_rows, (t ** 3 - t) / 12.0, minlength=n_rows), 0.0))
    rows = np.unique(group_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[rows] *= (norm0 / norm[rows]).astype(np.float32)[:, None]
        row = tied // p
        out.ravel()[row * p + order.ravel()[tied]] = (mean_pos - (p - 1) / 2.0) / norm[row]
    out[rows[norm[rows] == 0]] = np.nan  # constant rows: correlation undefined
    return out


def _rank_rows(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based, float64) along the last axis of a 2-d tensor; ties get the mean rank."""
    if x.device.type == "cpu":  # numpy's vectorised sorts are much faster than torch.sort on CPU
        return torch.from_numpy(_rank_rows_numpy(x.numpy()))
    n_rows, p = x.shape
    vals, order = torch.sort(x, dim=-1, stable=True)
    pos = torch.arange(p, device=x.device).expand(n_rows, p)
    starts = torch.ones_like(vals, dtype=torch.bool)
    starts[:, 1:] = vals[:, 1:] != vals[:, :-1]
    first = torch.cummax(torch.where(starts, pos, torch.zeros_like(pos)), dim=-1).values
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    last_rev = torch.cummin(torch.where(ends, pos, torch.full_like(pos, p - 1)).flip(-1), dim=-1).values
    rank_sorted = (first + last_rev.flip(-1)).to(torch.float64) / 2.0 + 1.0
    ranks = torch.empty_like(rank_sorted)
    ranks.scatter_(-1, order, rank_sorted)
    return ranks


def rank_transform(vectors, device=None):
    """Average ranks (1-based, ties -> mean rank, as ``scipy.stats.rankdata``) along the last axis.

    Parameters
    ----------
    vectors : array or tensor (..., n_entries)

    Returns
    -------
    ranks : same kind, float64 (..., n_entries)
    """
    x = _as_float_tensor(vectors, device)
    flat = x.reshape(-1, x.shape[-1])
    rows = max(1, _RANK_CHUNK_ELEMENTS // max(1, flat.shape[1]))
    out = torch.cat([_rank_rows(flat[i:i + rows]) for i in range(0, flat.shape[0], rows)]) if flat.shape[0] else \
        torch.empty_like(flat, dtype=torch.float64)
    return like_input(out.reshape(x.shape), vectors)


def _as_float_tensor(x, device):
    """float64 input stays float64 (ties and ranks as in the reference); anything else -> float32."""
    if isinstance(x, torch.Tensor):
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    else:
        kind = np.asarray(x).dtype
        dtype = torch.float64 if kind.kind == "f" and kind.itemsize == 8 else torch.float32  # any byte order
    return as_tensor(x, device=device, dtype=dtype)


def constant_rows(x: torch.Tensor) -> torch.Tensor:
    """bool (n_rows,): rows whose entries are all equal (or that have no entries), exactly, without rounding."""
    if x.shape[-1] == 0:
        return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    return x.amax(dim=-1) == x.amin(dim=-1)


def prepare_vectors(vectors, method: str = "spearman", device=None) -> torch.Tensor:
    """Transform condensed RDMs once so that a comparison is a dot product.

    Parameters
    ----------
    vectors : array or tensor (n_vectors, n_entries), NaN-free
    method : {"spearman", "corr", "cosine"}

    Returns
    -------
    tensor float32 (n_vectors, n_entries): ranked (spearman), centred (spearman, corr) and unit-norm.
    A constant vector (all entries equal, tested exactly) gives a NaN row for spearman and corr, and an
    all-zero vector for cosine: the similarity is undefined (0 / 0), whatever the vector's length.
    """
    x = _as_float_tensor(vectors, device)
    if x.ndim == 1:
        x = x[None]
    if method not in ("spearman", "corr", "cosine"):
        raise ValueError(f"prepare_vectors: method {method!r} is not a dot-product method")
    rows = max(1, _RANK_CHUNK_ELEMENTS // max(1, x.shape[1]))
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    for i in range(0, x.shape[0], rows):
        chunk = x[i:i + rows]
        # decided on the input, not on the centred values, whose rounding residue would make the answer
        # depend on the vector's length (NaN for some lengths, ~0 for others)
        undefined = (constant_rows(chunk) if method != "cosine" else ~(chunk != 0).any(dim=-1))
        if method == "spearman" and chunk.device.type == "cpu":  # ranked, centred and scaled in one pass
            out[i:i + rows] = torch.from_numpy(_spearman_rows_numpy(chunk.numpy()))
        else:
            chunk = _rank_rows(chunk) if method == "spearman" else chunk.to(torch.float64)
            if method in ("spearman", "corr"):
                chunk = chunk - chunk.mean(dim=-1, keepdim=True)
            out[i:i + rows] = chunk / torch.linalg.vector_norm(chunk, dim=-1, keepdim=True)
        out[i:i + rows][undefined] = torch.nan
    return out


def dot_prepared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All dot products of prepared vectors, float64 (n_a, n_b), accumulated over entry chunks."""
    p = a.shape[1]
    acc = torch.zeros((a.shape[0], b.shape[0]), dtype=torch.float64, device=a.device)
    for s in range(0, p, _DOT_CHUNK):
        acc += (a[:, s:s + _DOT_CHUNK] @ b[:, s:s + _DOT_CHUNK].T).to(torch.float64)
    return acc


def _tie_pairs(v: np.ndarray) -> int:
    _, counts = np.unique(v, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _tau_a_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    p = a.shape[1]
    n0 = p * (p - 1) / 2.0
    ties_a = [_tie_pairs(v) for v in a]
    ties_b = [_tie_pairs(v) for v in b]
    out = np.empty((a.shape[0], b.shape[0]))
    for i, va in enumerate(a):
        for j, vb in enumerate(b):
            if ties_a[i] == n0 or ties_b[j] == n0:  # a constant vector: no concordant/discordant pairs
                out[i, j] = 0.0
                continue
            tau_b = scipy.stats.kendalltau(va, vb, variant="b").statistic
            # tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2));  tau_a = (C - D) / n0
            out[i, j] = tau_b * np.sqrt((n0 - ties_a[i]) * (n0 - ties_b[j])) / n0
    return np.clip(out, -1.0, 1.0)


def compare_rdms(a, b, method: str = "spearman", device=None):
    """Similarity of every RDM in ``a`` with every RDM in ``b``.

    Parameters
    ----------
    a : array or tensor (..., n_entries)
        Condensed RDMs, any leading shape (e.g. (n_layers,)).
    b : array or tensor (..., n_entries)
        Condensed RDMs, any leading shape (e.g. (n_subjects, n_rois) or (n_subjects, n_times)).
    method : {"spearman", "corr", "cosine", "tau-a"}
    device : compute device (default: tensor's device, CUDA if available for numpy input).

    Returns
    -------
    sim : same kind as ``a``, float64, shape ``a.shape[:-1] + b.shape[:-1]``
    """
    if method not in METHODS:
        raise ValueError(f"unknown comparison method {method!r}; expected one of {METHODS}")
    ta = _as_float_tensor(a, device)
    tb = _as_float_tensor(b, device if device is not None else ta.device)
    if ta.shape[-1] != tb.shape[-1]:
        raise ValueError(f"RDM vectors differ in length: {ta.shape[-1]} vs {tb.shape[-1]}")
    lead_a, lead_b = ta.shape[:-1], tb.shape[:-1]
    fa = ta.reshape(-1, ta.shape[-1])
    fb = tb.reshape(-1, tb.shape[-1])
    keep = ~(torch.isnan(fa).any(0) | torch.isnan(fb).any(0))
    if not bool(keep.all()):
        fa, fb = fa[:, keep], fb[:, keep]
    if method == "tau-a":
        sim = torch.as_tensor(_tau_a_matrix(fa.double().cpu().numpy(), fb.double().cpu().numpy()))
    else:
        with small_work_threads((fa.shape[0] + fb.shape[0]) * fa.shape[1], fa.device, threshold=1 << 24):
            sim = dot_prepared(prepare_vectors(fa, method), prepare_vectors(fb, method))
        if method != "cosine":
            sim = sim.clamp(-1.0, 1.0)
    return like_input(sim.reshape(lead_a + lead_b), a)


def compare_paired(a, b, method: str = "spearman", device=None):
    """Similarity of ``a[k]`` with ``b[k]`` for each k (no all-pairs matrix).

    Parameters
    ----------
    a, b : array or tensor (n, n_entries)
    method : see :func:`compare_rdms`

    Returns
    -------
    sim : same kind as ``a``, float64 (n,)
    """
    if method not in METHODS:
        raise ValueError(f"unknown comparison method {method!r}; expected one of {METHODS}")
    ta = _as_float_tensor(a, device)
    tb = _as_float_tensor(b, ta.device)
    if ta.ndim == 1:
        ta, tb = ta[None], tb[None]
    if ta.shape != tb.shape:
        raise ValueError(f"paired comparison needs equal shapes, got {tuple(ta.shape)} and {tuple(tb.shape)}")
    keep = ~(torch.isnan(ta).any(0) | torch.isnan(tb).any(0))
    if not bool(keep.all()):
        ta, tb = ta[:, keep], tb[:, keep]
    if method == "tau-a":
        sim = torch.as_tensor([_tau_a_matrix(x[None], y[None])[0, 0]
                               for x, y in zip(ta.double().cpu().numpy(), tb.double().cpu().numpy())])
    else:
        with small_work_threads(2 * ta.numel(), ta.device, threshold=1 << 24):
            pa, pb = prepare_vectors(ta, method), prepare_vectors(tb, method)
            sim = (pa.double() * pb.double()).sum(-1)
        if method != "cosine":
            sim = sim.clamp(-1.0, 1.0)
    return like_input(sim, a)
