"""Synthetic fMRI: apply a saved encoder to a feature cache and write a voxel store.

The synthetic store has the layout of a real one (``brainalign.store.write_voxel_store``): one trial
per stimulus (session 1, trial 1..n, repetition 0), ``shared`` copied from the source store's shared
stimuli, the encoder's voxels, grid, affine and ROIs, and attrs ``synthetic: true``. Responses are in
the units of the encoder's training targets (e.g. z-scored betas).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

log = logging.getLogger(__name__)


def encoder_rois(encoder) -> dict:
    """ROIs in ``write_voxel_store`` form: ``atlas/label`` names become integer atlases, others bool masks."""
    masks = encoder.roi_masks()
    atlases: dict[str, list] = {}
    out = {}
    for name, mask in masks.items():
        atlas, sep, label = name.partition("/")
        if sep:
            atlases.setdefault(atlas, []).append((label, mask))
        else:
            out[name] = np.asarray(mask, bool)
    for atlas, items in atlases.items():
        stacked = np.stack([m for _, m in items])
        if (stacked.sum(0) > 1).any():  # overlapping labels cannot live in one atlas: keep memberships
            for label, m in items:
                out[f"{atlas}-{label}"] = m
            continue
        labels = np.zeros(stacked.shape[1], dtype=np.int16)
        names = {}
        for k, (label, m) in enumerate(items, start=1):
            labels[m] = k
            names[k] = label
        out[atlas] = (labels, names)
    return out


def _native_ids(ids, dtype: str):
    if dtype == "int":
        try:
            return np.asarray([int(s) for s in ids], dtype=np.int64)
        except ValueError:
            pass
    return np.asarray([str(s) for s in ids], dtype=object)


def _predict_cache(enc, features_path, want, batch):
    """Encoder predictions (n_stimuli, n_voxels) for the stimuli of one cache (all, or those in ``want``)."""
    from ..features import open_feature_cache

    cache = open_feature_cache(features_path)
    missing = [name for name in enc.required_layers() if name not in cache.layers]
    if missing:
        raise InputError(features_path, f"cache lacks the encoder's layers {missing}")
    for name, model in enc.models.items():
        n_feat = sum(cache.array(b).shape[1] for b in enc.input_layers(name))
        if n_feat != model.coef.shape[0]:
            what = f"layer {name}" if enc.input_layers(name) == [name] else f"model {name} ({'+'.join(enc.input_layers(name))})"
            raise InputError(features_path, f"{what}: {n_feat} features, encoder expects {model.coef.shape[0]}")
    for key, value in enc.meta.get("feature_cache_attrs", {}).items():
        if cache.attrs.get(key) != value:
            warnings.warn(f"{features_path}: feature cache {key}={cache.attrs.get(key)!r} differs from the "
                          f"encoder's training features ({value!r})", UserWarning, stacklevel=3)
    ids = [str(s) for s in cache.stimulus_ids.tolist()]
    if want is not None:
        wanted = set(want)
        ids = [i for i in ids if i in wanted]
    rows = cache.rows_for(ids)
    pred = np.empty((len(ids), enc.n_voxels), dtype=np.float32)
    for s in range(0, len(ids), batch):
        r = rows[s : s + batch]
        pred[s : s + batch] = enc.predict(lambda name: cache.layer(name, r))
    return ids, pred


def synthesize(encoder_dir, features_path, out, stimuli=None, batch: int = 2048) -> Path:
    """Predict responses for the stimuli of a feature cache and write them as a synthetic voxel store.

    Parameters
    ----------
    encoder_dir : path
        ``DIR`` or ``DIR/encoder`` of ``brainalign encode``.
    features_path : path or list of paths
        Feature cache(s) with the encoder's layers (same model, weights and reduction); several caches
        (e.g. the real images and a folder of unseen images) go into one store, in order.
    out : path
        Output ``*.zarr``.
    stimuli : list, optional
        Subset of the cache's stimulus ids (default: all).

    Returns
    -------
    Path of the written store.
    """
    from ..store import write_voxel_store
    from ..encoding.model import VoxelwiseEncoder

    enc = VoxelwiseEncoder.load(encoder_dir)
    paths = [features_path] if isinstance(features_path, (str, Path)) else list(features_path)
    want = None if stimuli is None else [str(s) for s in stimuli]
    ids, preds = [], []
    for path in paths:
        cache_ids, cache_pred = _predict_cache(enc, path, want, batch)
        ids += cache_ids
        preds.append(cache_pred)
    if len(set(ids)) != len(ids):
        raise InputError(", ".join(map(str, paths)), "the feature caches share stimuli; each must be synthesised once")
    if want is not None and set(want) - set(ids):
        raise InputError(", ".join(map(str, paths)), f"{len(set(want) - set(ids))} requested stimuli not in the caches")
    pred = np.concatenate(preds) if preds else np.empty((0, enc.n_voxels), np.float32)
    shared = set(enc.meta.get("shared_stimuli", []))
    trials = pd.DataFrame({
        "session": 1, "trial": np.arange(1, len(ids) + 1), "stimulus": _native_ids(ids, enc.meta.get("stimulus_dtype", "str")),
        "repetition": 0, "shared": [s in shared for s in ids],
    })
    train = set(enc.meta.get("train_stimuli", []))
    seen = train | set(enc.meta.get("test_stimuli", []))
    # extra columns: whether the encoder was fitted on the stimulus / it was shown in the scanner at all
    trials["encoder_train"] = [s in train for s in ids]
    trials["seen_in_scanner"] = [s in seen for s in ids]
    g = enc.geometry
    attrs = {
        "dataset": enc.meta.get("dataset", "unknown"), "subject": enc.meta.get("subject", "unknown"),
        "zscored": bool(enc.meta.get("zscored") or False), "synthetic": True,
        "provenance": {"stage": "synthesize", "encoder": str(encoder_dir), "features": [str(p) for p in paths],
                       "source_store": enc.meta.get("store"), "layers_used": list(enc.models),
                       "feature_layers_used": enc.required_layers()},
    }
    write_voxel_store(out, pred, trials, g["voxel_ijk"], g["grid_shape"], g["affine"], rois=encoder_rois(enc),
                      ncsnr=None, attrs=attrs)
    log.info("synthesize: %d stimuli x %d voxels -> %s", len(ids), enc.n_voxels, out)
    return Path(out)
