"""Object-dimension analysis: which stimulus dimensions a layer's RDM reflects.

For per-image dimension scores ``e`` (one-hot categories or continuous embeddings such as the
THINGS/SPoSE dimensions), dimension d has the model RDM ``RDM_d[i, j] = |e_i,d - e_j,d|``; each
layer RDM is compared with every dimension RDM (Spearman by default), and two models (e.g.
ReAlnet-fMRI vs CORnet-S) are contrasted by the difference of those similarities. Confidence
intervals bootstrap the images (the same resampled images for every layer, dimension and model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .bootstrap import bootstrap_stimuli, confidence_interval
from .compare import _as_float_tensor, compare_rdms
from .tensors import as_tensor, like_input

#: columns of :func:`dimension_table`
DIMENSION_COLUMNS = ["model", "layer", "dimension", "method", "n_stimuli", "value", "ci_low", "ci_high",
                     "baseline", "diff", "diff_ci_low", "diff_ci_high"]


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


def dimension_rsa(layer_rdms, scores, method: str = "spearman", device=None, n_boot: int = 0, seed: int = 0):
    """Similarity of each layer RDM with each dimension RDM, optionally with its stimulus-bootstrap samples.

    Parameters
    ----------
    layer_rdms : array (n_layers, P)
    scores : array (n_images, n_dimensions), rows in the layer RDMs' condition order
    method : comparison method (see :func:`brainalign.rsa.compare_rdms`)
    n_boot : bootstrap samples over images (0 = none)
    seed : seed of the bootstrap (:func:`brainalign.rsa.bootstrap_stimuli`)

    Returns
    -------
    sim : numpy float64 (n_layers, n_dimensions)
    samples : numpy float64 (n_boot, n_layers, n_dimensions), only when ``n_boot > 0``; every sample
        resamples the same images for all layers and dimensions
    """
    dims = dimension_rdms(as_tensor(scores, device=device))
    sim = np.asarray(torch.as_tensor(compare_rdms(layer_rdms, dims, method=method, device=dims.device)).cpu())
    if n_boot <= 0:
        return sim
    return sim, bootstrap_stimuli(layer_rdms, dims, method, n_boot=n_boot, seed=seed, device=dims.device)


def dimension_difference(layer_rdms_a, layer_rdms_b, scores, method: str = "spearman", n_boot: int = 0,
                         seed: int = 0, level: float = 0.95, device=None):
    """Model A minus model B, per layer and dimension, with an optional stimulus-bootstrap CI.

    Parameters
    ----------
    layer_rdms_a, layer_rdms_b : array (n_layers, P), same conditions and layer order
    scores : array (n_images, n_dimensions)
    n_boot : bootstrap samples over images (0 = no interval); both models see the same resampled images

    Returns
    -------
    diff : numpy (n_layers, n_dimensions)
    ci : (low, high) numpy arrays (n_layers, n_dimensions), only when ``n_boot > 0``
    """
    a = _as_float_tensor(layer_rdms_a, device)
    b = _as_float_tensor(layer_rdms_b, a.device)
    both = torch.cat([a, b.to(a.dtype)])
    result = dimension_rsa(both, scores, method, device=a.device, n_boot=n_boot, seed=seed)
    sim, samples = result if n_boot > 0 else (result, None)
    diff = sim[:len(a)] - sim[len(a):]
    if samples is None:
        return diff
    return diff, confidence_interval(samples[:, :len(a)] - samples[:, len(a):], level)


def dimension_table(keys, layer_rdms, scores: pd.DataFrame, baseline=None, method: str = "spearman",
                    n_boot: int = 0, level: float = 0.95, seed: int = 0, device=None,
                    similarities=None) -> pd.DataFrame:
    """The object-dimension table of several models: similarities, differences vs a baseline, summaries.

    Parameters
    ----------
    keys : list of (model, layer), one per row of ``layer_rdms``
    layer_rdms : array (n_keys, P), condensed RDMs over the images of ``scores`` (in its row order)
    scores : DataFrame (n_images, n_dimensions), columns = dimension names
    baseline : str or None
        Model the differences are taken against, layer by layer for the layers it shares with each other
        model (other rows: NaN); None = no differences.
    method, n_boot, seed : as in :func:`dimension_rsa` (one bootstrap for every model, layer and dimension)
    level : confidence level of the percentile intervals
    similarities : optional, the result of :func:`dimension_rsa` for these arguments (computed when None)

    Returns
    -------
    DataFrame with :data:`DIMENSION_COLUMNS`: one row per (model, layer, dimension), then per model the mean
    over its layers and the dimensions (``layer = dimension = "all"``; its difference averages the layers
    shared with the baseline). Intervals are NaN without bootstrap.
    """
    result = similarities if similarities is not None else dimension_rsa(
        layer_rdms, scores.to_numpy(dtype=np.float32), method, device=device, n_boot=n_boot, seed=seed)
    sims, boots = result if n_boot > 0 else (result, None)  # (K, D), (B, K, D)

    def ci(pick):
        """Interval of a statistic of the bootstrap samples, ``pick(samples (B, K, D)) -> (B,)``."""
        if boots is None:
            return np.nan, np.nan
        lo, hi = confidence_interval(pick(boots)[:, None], level)
        return float(lo[0]), float(hi[0])

    models = list(dict.fromkeys(m for m, _ in keys))
    index = {key: k for k, key in enumerate(keys)}
    common = dict(method=method, n_stimuli=len(scores), baseline=baseline or "")
    rows = []
    for mname in models:
        layers = [layer for m, layer in keys if m == mname]
        ks = [index[mname, layer] for layer in layers]
        base = {}  # row of this model -> row of the baseline's layer of the same name
        if baseline is not None and mname != baseline:
            base = {index[mname, layer]: index[baseline, layer] for layer in layers if (baseline, layer) in index}
        for k, layer in zip(ks, layers):
            for d, dname in enumerate(scores.columns):
                rec = dict(model=mname, layer=layer, dimension=dname, value=float(sims[k, d]), diff=np.nan,
                           diff_ci_low=np.nan, diff_ci_high=np.nan, **common)
                rec["ci_low"], rec["ci_high"] = ci(lambda s: s[:, k, d])
                if k in base:
                    b = base[k]
                    rec["diff"] = float(sims[k, d] - sims[b, d])
                    rec["diff_ci_low"], rec["diff_ci_high"] = ci(lambda s: s[:, k, d] - s[:, b, d])
                rows.append(rec)
        rec = dict(model=mname, layer="all", dimension="all", value=float(sims[ks].mean()), diff=np.nan,
                   diff_ci_low=np.nan, diff_ci_high=np.nan, **common)
        rec["ci_low"], rec["ci_high"] = ci(lambda s: s[:, ks].mean(axis=(1, 2)))
        if base:
            a_k, b_k = list(base), list(base.values())
            rec["diff"] = float((sims[a_k] - sims[b_k]).mean())
            rec["diff_ci_low"], rec["diff_ci_high"] = ci(lambda s: (s[:, a_k] - s[:, b_k]).mean(axis=(1, 2)))
        rows.append(rec)
    return pd.DataFrame(rows, columns=DIMENSION_COLUMNS)


def dimension_comparisons(keys, sims, boots, pairs, n_stimuli: int, level: float = 0.95) -> pd.DataFrame:
    """Model minus baseline: similarity with the object-dimension RDMs, averaged over the layers both models have
    and over the dimensions (pre-declared summary, no layer chosen), with the paired stimulus bootstrap.

    Parameters
    ----------
    keys : list of (model, layer), one per row of ``sims``
    sims : array (n_keys, n_dimensions), :func:`dimension_rsa`'s similarities
    boots : array (n_boot, n_keys, n_dimensions) of the same on resampled images (one draw for all), or None
    pairs : list of (model, baseline)
    n_stimuli : int, images of the analysis
    level : confidence level

    Returns
    -------
    DataFrame with :data:`brainalign.rsa.comparisons.COMPARISON_COLUMNS` (``analysis = "dimensions"``, ``roi =
    "object dimensions"``); pairs without a shared layer are left out
    """
    from ..inference import bootstrap_p, percentile_ci
    from .comparisons import COMPARISON_COLUMNS, STIMULUS_TEST

    index = {key: k for k, key in enumerate(keys)}
    rows = []
    for model, baseline in pairs:
        shared = [layer for m, layer in keys if m == model and (baseline, layer) in index]
        if not shared:
            continue
        a_k = [index[model, layer] for layer in shared]
        b_k = [index[baseline, layer] for layer in shared]
        draws = (boots[:, a_k] - boots[:, b_k]).mean(axis=(1, 2)) if boots is not None and len(boots) else None
        lo, hi = percentile_ci(draws, level) if draws is not None else (np.nan, np.nan)
        label = f"mean of {', '.join(shared)}"
        rows.append(dict(analysis="dimensions", model=model, baseline=baseline, roi="object dimensions",
                         relation="", subject="", layer_model=label, layer_baseline=label,
                         value_model=float(sims[a_k].mean()), value_baseline=float(sims[b_k].mean()),
                         effect=float((sims[a_k] - sims[b_k]).mean()), ci_low=lo, ci_high=hi,
                         p=bootstrap_p(draws) if draws is not None else np.nan, n_stimuli=int(n_stimuli),
                         n_subjects=0, n_boot=0 if draws is None else len(draws), test=STIMULUS_TEST))
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
