"""Small RSA inputs written straight from the documented formats (docs/features.md, docs/store.md), shared by the
RSA and held-out tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import zarr

from brainalign.store import write_voxel_store


def write_feature_cache(path, stim_ids, layers):
    """A finished feature cache: ``layers`` {name: (n_stimuli, n_features)} for the integer ``stim_ids``."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name, arr in layers.items():
        g.create_array(f"layers/{name}", data=np.asarray(arr, dtype=np.float32))
    g.attrs.update({"format": "brainalign.feature_cache/1", "complete": True, "layers": list(layers),
                    "model": path.stem})
    pd.DataFrame({"stimulus": np.asarray(stim_ids, dtype=np.int64)}).to_parquet(path / "stimuli.parquet")
    return path


def trial_table(stim_per_trial):
    """Trial table of one session showing ``stim_per_trial`` in order (repetitions counted, all shared)."""
    s = pd.Series(stim_per_trial)
    return pd.DataFrame({"session": 1, "trial": np.arange(1, len(s) + 1), "stimulus": s,
                         "repetition": s.groupby(s).cumcount(), "shared": True})


def write_two_roi_store(path, betas, trials, grid, attrs):
    """A voxel store of ``betas`` (n_trials, n_voxels) on the first n_voxels cells of ``grid`` (C order), identity
    affine, its voxels split in halves into the ROIs V1 (label 1) and LO (label 2) of atlas ``atlas``; returns the
    voxel labels (n_voxels,) int16."""
    n_vox = np.asarray(betas).shape[1]
    labels = np.repeat([1, 2], n_vox // 2).astype(np.int16)
    ijk = np.stack(np.unravel_index(np.arange(n_vox), grid), 1)
    write_voxel_store(path, betas, trials, ijk, grid, np.eye(4), rois={"atlas": (labels, {1: "V1", 2: "LO"})},
                      attrs=attrs)
    return labels
