"""On-disk feature cache: a zarr v3 group, one array per layer, rows aligned to stimulus IDs.

Layout of ``CACHE.zarr`` (see docs/features.md)::

    zarr.json                      group attrs: format, complete, model, weights, preprocessing, reduction,
                                   stimulus_set, n_stimuli, layers, layer_shapes, fingerprint, ...
    layers/<layer>                 float32 (n_stimuli, n_features)
    pca/<layer>/mean               float32 (n_raw_features,)            (reduce="pca" only)
    pca/<layer>/components         float32 (n_components, n_raw_features)
    pca/<layer>/explained_variance float32 (n_components,)
    stimuli.parquet                column ``stimulus``: int64 nsdId (NSD) or str; row i <-> layers/*[i]
    training_stimuli.parquet       trained models only: the training record of the checkpoint (columns stimulus,
                                   role = train | val, subject; brainalign.heldout), what the model was trained
                                   and selected on

Weights provenance (group attrs, :mod:`brainalign.model_provenance`): ``weights`` = ``random`` |
``imagenet:<file name>`` | ``checkpoint:<path>`` | ``file:<path>``; ``weights_origin`` = where the weights come
from before any brain-aligned training (a checkpoint's recorded initial weights); ``training`` = method, control,
subject(s), epoch and record summary of a trained checkpoint, else null.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

CACHE_FORMAT = "brainalign.feature_cache/1"
STIMULI_FILE = "stimuli.parquet"
#: the training record of a trained model's checkpoint, copied into its cache
TRAINING_STIMULI_FILE = "training_stimuli.parquet"


def write_stimulus_ids(group_dir, ids) -> None:
    """Write ``stimuli.parquet`` (column ``stimulus``: int64 if every ID is an int, else str)."""
    import pandas as pd

    if ids and all(isinstance(i, (int, np.integer)) for i in ids):
        column = pd.Series(np.asarray(ids, dtype=np.int64), name="stimulus")
    else:
        column = pd.Series([str(i) for i in ids], name="stimulus", dtype=str)
    pd.DataFrame({"stimulus": column}).to_parquet(Path(group_dir) / STIMULI_FILE, index=False)


def read_stimulus_ids(group_dir) -> np.ndarray:
    import pandas as pd

    return pd.read_parquet(Path(group_dir) / STIMULI_FILE)["stimulus"].to_numpy()


def read_training_stimuli(group_dir, attrs: dict):
    """The training record copied into a cache (DataFrame), or None when the cache's model was not trained.

    Raises
    ------
    InputError
        The attrs name a training record that the cache lacks or that differs from the one recorded.
    """
    from ..heldout import read_training_record

    training = attrs.get("training") or {}
    path = Path(group_dir) / TRAINING_STIMULI_FILE
    if not training.get("record"):
        return read_training_record(path) if path.is_file() else None
    return read_training_record(path, training["record"].get("sha256"))


class FeatureCache:
    """Read access to a finished feature cache (use :func:`open_feature_cache`).

    Attributes
    ----------
    path : Path
    attrs : dict
        Group attributes (model, weights, hashes, preprocessing, reduction, ...).
    stimulus_ids : ndarray (n_stimuli,)
        int64 nsdIds (NSD) or str; row i of every layer belongs to ``stimulus_ids[i]``.
    layers : list of str
    training_stimuli : DataFrame or None
        What a trained model was trained and selected on (columns ``stimulus`` str, ``role`` train | val,
        ``subject``; :mod:`brainalign.heldout`); None for an untrained model (random or pretrained weights).
    """

    def __init__(self, path):
        import zarr

        self.path = Path(path)
        self._group = zarr.open_group(str(self.path), mode="r")
        self.attrs = dict(self._group.attrs)
        self.layers = list(self.attrs.get("layers", []))
        self.stimulus_ids = read_stimulus_ids(self.path)
        self.training_stimuli = read_training_stimuli(self.path, self.attrs)

    def __repr__(self):
        return f"FeatureCache({str(self.path)!r}, n_stimuli={len(self.stimulus_ids)}, layers={self.layers})"

    def array(self, name: str):
        """The lazy ``zarr.Array`` (n_stimuli, n_features) of one layer."""
        if name not in self.layers:
            raise InputError(self.path, f"no layer {name!r} in this feature cache (layers: {self.layers})")
        return self._group[f"layers/{name}"]

    def layer(self, name: str, rows=None) -> np.ndarray:
        """Features of one layer.

        Parameters
        ----------
        rows : slice, int array or bool mask, optional
            Rows to read (default all).

        Returns
        -------
        ndarray float32 (n_rows, n_features)
        """
        arr = self.array(name)
        if rows is None:
            return np.asarray(arr[...])
        rows = np.asarray(rows) if not isinstance(rows, slice) else rows
        if isinstance(rows, np.ndarray) and rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if isinstance(rows, np.ndarray):
            return np.asarray(arr.get_orthogonal_selection((rows, slice(None))))
        return np.asarray(arr[rows])

    def rows_for(self, stimulus_ids) -> np.ndarray:
        """Row indices of the given stimulus IDs (matched on ``str(id)``); raises if one is absent."""
        index = {str(s): i for i, s in enumerate(self.stimulus_ids)}
        missing = [s for s in stimulus_ids if str(s) not in index]
        if missing:
            raise InputError(self.path, f"{len(missing)} stimulus IDs not in the cache, e.g. {missing[:5]}")
        return np.asarray([index[str(s)] for s in stimulus_ids], dtype=np.int64)

    def pca(self, name: str) -> dict | None:
        """PCA fitted for a layer: ``{"mean", "components", "explained_variance"}`` arrays, or None."""
        key = f"pca/{name}"
        try:
            sub = self._group[key]
        except KeyError:
            return None
        return {k: np.asarray(sub[k][...]) for k in ("mean", "components", "explained_variance")}


def open_feature_cache(path) -> FeatureCache:
    """Open a finished feature cache.

    Raises
    ------
    InputError
        If the path is missing, not a feature cache, or was not completed.
    """
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise InputError(path, "feature cache not found (no zarr.json)")
    import zarr

    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    if attrs.get("format") != CACHE_FORMAT:
        raise InputError(path, f"not a brainalign feature cache (format {attrs.get('format')!r})")
    if not attrs.get("complete"):
        raise InputError(path, "feature cache is incomplete (the extraction did not finish)")
    if not (path / STIMULI_FILE).is_file():
        raise InputError(path, f"feature cache has no {STIMULI_FILE}")
    return FeatureCache(path)
