"""Small RSA inputs written straight from the documented formats (docs/features.md, docs/store.md), shared by the
RSA tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import zarr


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
