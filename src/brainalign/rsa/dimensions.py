"""Object-dimension analysis: which stimulus dimensions a layer's RDM reflects.

For per-image dimension scores ``e`` (one-hot categories or continuous embeddings such as the
THINGS/SPoSE dimensions), dimension d has the model RDM ``RDM_d[i, j] = |e_i,d - e_j,d|``; each
layer RDM is compared with every dimension RDM (Spearman by default), and two models (e.g.
ReAlnet-fMRI vs CORnet-S) are contrasted by the difference of those similarities.
"""

from __future__ import annotations

import numpy as np
import torch

from ._backend import as_tensor, like_input
from .bootstrap import bootstrap_pair_index, confidence_interval
from .compare import _as_float_tensor, compare_rdms


def dimension_rdms(scores, device=None):
    """Absolute-difference RDM per dimension.

    Parameters
    ----------
    scores : array (n_images, n_dimensions)

    Returns
    -------
    rdms : same kind as ``scores``, float32 (n_dimensions, n_images*(n_images-1)/2)
    """
    e = as_tensor(scores, device=device)
    if e.ndim == 1:
        e = e[:, None]
    n = e.shape[0]
    iu = torch.triu_indices(n, n, offset=1, device=e.device)
    out = (e[iu[0]] - e[iu[1]]).abs().T.contiguous()
    return like_input(out, scores)


def dimension_rsa(layer_rdms, scores, method: str = "spearman", device=None) -> np.ndarray:
    """Similarity of each layer RDM with each dimension RDM.

    Parameters
    ----------
    layer_rdms : array (n_layers, P)
    scores : array (n_images, n_dimensions), rows in the layer RDMs' condition order

    Returns
    -------
    sim : numpy float64 (n_layers, n_dimensions)
    """
    dims = dimension_rdms(as_tensor(scores, device=device))
    return np.asarray(torch.as_tensor(compare_rdms(layer_rdms, dims, method=method)).cpu())


def dimension_difference(layer_rdms_a, layer_rdms_b, scores, method: str = "spearman", n_boot: int = 0,
                         seed: int = 0, level: float = 0.95, device=None):
    """Model A minus model B, per layer and dimension, with an optional stimulus-bootstrap CI.

    Parameters
    ----------
    layer_rdms_a, layer_rdms_b : array (n_layers, P), same conditions and layer order
    scores : array (n_images, n_dimensions)
    n_boot : bootstrap samples over images (0 = no interval)

    Returns
    -------
    diff : numpy (n_layers, n_dimensions)
    ci : (low, high) numpy arrays (n_layers, n_dimensions), only when ``n_boot > 0``
    """
    a = _as_float_tensor(layer_rdms_a, device)
    b = _as_float_tensor(layer_rdms_b, a.device)
    dims = dimension_rdms(as_tensor(scores, device=a.device))
    diff = (np.asarray(torch.as_tensor(compare_rdms(a, dims, method)).cpu())
            - np.asarray(torch.as_tensor(compare_rdms(b, dims, method)).cpu()))
    if n_boot <= 0:
        return diff
    n = np.asarray(scores).shape[0]
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        idx = torch.as_tensor(bootstrap_pair_index(rng.integers(0, n, size=n), n), device=a.device)
        d = dims[:, idx]
        samples.append(compare_rdms(a[:, idx], d, method).cpu().numpy() - compare_rdms(b[:, idx], d, method).cpu().numpy())
    return diff, confidence_interval(np.stack(samples), level)
