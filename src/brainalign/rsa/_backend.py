"""Small torch helpers shared by the RSA modules: devices, array conversion, condensed indexing."""

from __future__ import annotations

import numpy as np
import torch


def resolve_device(device=None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU; anything else -> ``torch.device(device)``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_tensor(x, device=None, dtype=torch.float32) -> torch.Tensor:
    """Convert a numpy array / tensor / sequence to a tensor of ``dtype`` on ``device``.

    A tensor input keeps its own device when ``device`` is None.
    """
    if isinstance(x, torch.Tensor):
        dev = x.device if device is None else resolve_device(device)
        return x.to(device=dev, dtype=dtype)
    arr = np.asarray(x)
    if not arr.flags.writeable:  # e.g. pandas copy-on-write views; torch warns on read-only memory
        arr = arr.copy()
    return torch.as_tensor(arr, dtype=dtype, device=resolve_device(device))


def like_input(t: torch.Tensor, template):
    """Return ``t`` as a tensor if ``template`` is one, else as a numpy array."""
    if isinstance(template, torch.Tensor):
        return t
    return t.detach().cpu().numpy()


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


class small_work_threads:
    """Context manager: run torch CPU ops single-threaded when the work is small.

    Intra-op thread start-up dominates tiny tensor ops (and is very slow on a loaded machine), so
    below ``threshold`` elements the CPU thread count is set to 1 and restored afterwards.
    """

    def __init__(self, n_elements: int, device=None, threshold: int = 1 << 20):
        dev = resolve_device(device) if not isinstance(device, torch.device) else device
        self.active = dev.type == "cpu" and n_elements < threshold and torch.get_num_threads() > 1
        self.saved = None

    def __enter__(self):
        if self.active:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            torch.set_num_threads(self.saved)
        return False
