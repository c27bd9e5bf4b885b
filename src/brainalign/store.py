"""Voxel and EEG stores: zarr v3 groups with a trial table (the stable interface, see docs/store.md).

Writers: :func:`write_voxel_store` (whole arrays in memory), :class:`VoxelStoreWriter` (streaming,
one block of trials at a time; used by ingestion), :func:`write_eeg_store` / :class:`EEGStoreWriter`.
Readers: :func:`open_voxel_store` -> :class:`VoxelStore`, :func:`open_eeg_store` -> :class:`EEGStore`,
with the trial groupings every stage needs: ``mean_by_stimulus`` (repetitions averaged), ``mean_by_fold``
(averaged within folds of the repetitions, for crossnobis RDMs) and ``VoxelStore.repetitions_by_stimulus``
(single trials, one slot per repetition, for noise ceilings). All other modules read stores through these only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_output
from .errors import InputError

#: group attr ``format`` of a voxel / EEG store, and the version of the layout described in docs/store.md
VOXEL_FORMAT = "brainalign.voxel_store"
EEG_FORMAT = "brainalign.eeg_store"
FORMAT_VERSION = 2
#: layout versions the readers accept (2 added ``chunks.json`` and the ``excluded`` group)
READABLE_VERSIONS = (1, 2)
TRIALS_FILE = "trials.parquet"
#: every file of a store (chunks, array metadata, trial table) with its size, written before the final attrs;
#: checked on open, so a store with a chunk file missing (an interrupted copy) is refused instead of reading NaN
CHUNKS_FILE = "chunks.json"
#: ``excluded/reason`` codes of voxels left out of a store (see :meth:`VoxelStoreWriter.finish`)
EXCLUSION_REASONS = ("non-finite", "constant")
TRIAL_COLUMNS = ("session", "trial", "stimulus", "repetition", "shared")
#: optional array: the subject's mean image on the betas' grid (X, Y, Z), the background of brain maps
MEAN_VOLUME = "mean_volume"

#: default chunk shape of ``betas``: a block of trials x a block of voxels (4 MB float32)
DEFAULT_TRIAL_CHUNK = 250
DEFAULT_VOXEL_CHUNK = 4096


def _compressors():
    from zarr.codecs import BloscCodec

    return [BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")]


def _zarr():
    import zarr

    return zarr


def repetition_index(stimuli) -> np.ndarray:
    """0-based count of earlier presentations of each trial's stimulus.

    Parameters
    ----------
    stimuli : array-like (n_trials,)

    Returns
    -------
    ndarray int64 (n_trials,)
    """
    s = pd.Series(list(stimuli))
    return s.groupby(s, sort=False).cumcount().to_numpy(dtype=np.int64)


def _check_trials(trials: pd.DataFrame, n_rows: int, where) -> pd.DataFrame:
    if not isinstance(trials, pd.DataFrame):
        trials = pd.DataFrame(trials)
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise InputError(where, f"trial table lacks columns {missing}")
    if len(trials) != n_rows:
        raise InputError(where, f"trial table has {len(trials)} rows but the data have {n_rows} trials")
    out = trials.reset_index(drop=True).copy()
    for col in ("session", "trial", "repetition"):
        out[col] = out[col].astype(np.int64)
    out["shared"] = out["shared"].astype(bool)
    if pd.api.types.is_numeric_dtype(out["stimulus"].dtype):
        out["stimulus"] = out["stimulus"].astype(np.int64)
    else:
        out["stimulus"] = out["stimulus"].astype(str)
    return out


def _jsonable(obj):
    """Round-trip through JSON so attrs hold only plain types (numpy scalars become numbers)."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _write_chunk_manifest(path) -> None:
    """List every file of the store being written (except the group metadata, rewritten last) with its size."""
    path = Path(path)
    files = {}
    for dirpath, _, names in os.walk(path):
        for name in names:
            rel = (Path(dirpath) / name).relative_to(path).as_posix()
            if rel not in ("zarr.json", CHUNKS_FILE):
                files[rel] = (Path(dirpath) / name).stat().st_size
    (path / CHUNKS_FILE).write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=0) + "\n")


def check_store_files(path) -> None:
    """Refuse a store whose files differ from its ``chunks.json`` (a chunk missing or of another size).

    Raises
    ------
    InputError
        Naming the first missing or changed file.
    """
    path = Path(path)
    manifest = path / CHUNKS_FILE
    try:
        files = json.loads(manifest.read_text())["files"]
    except FileNotFoundError:
        raise InputError(manifest, "missing: the store is incomplete (interrupted write or copy)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(manifest, f"unreadable file list ({type(exc).__name__}: {exc})") from None
    for rel, size in files.items():
        try:
            actual = (path / rel).stat().st_size
        except OSError:
            raise InputError(path / rel, "missing from the store (deleted, or an incomplete copy); the store "
                                         "cannot be read safely: copy or ingest it again") from None
        if actual != size:
            raise InputError(path / rel, f"has {actual} bytes, the store recorded {size} (truncated or changed); "
                                         "copy or ingest the store again")


class _BlockWriter:
    """Appends row blocks to a 2-D+ zarr array, buffering to whole chunk rows."""

    def __init__(self, array, chunk_rows: int):
        self.array = array
        self.chunk_rows = chunk_rows
        self.buffer = np.empty((chunk_rows,) + tuple(array.shape[1:]), dtype=array.dtype)
        self.filled = 0  # rows in buffer
        self.written = 0  # rows already in the array

    def append(self, block: np.ndarray):
        block = np.asarray(block, dtype=self.array.dtype)
        if block.shape[1:] != self.buffer.shape[1:]:
            raise ValueError(f"block shape {block.shape} does not fit rows of {self.array.shape}")
        if self.written + self.filled + len(block) > self.array.shape[0]:
            raise ValueError("more rows appended than the array holds")
        pos = 0
        while pos < len(block):
            take = min(self.chunk_rows - self.filled, len(block) - pos)
            self.buffer[self.filled:self.filled + take] = block[pos:pos + take]
            self.filled += take
            pos += take
            if self.filled == self.chunk_rows:
                self._flush()

    def _flush(self):
        if self.filled:
            self.array[self.written:self.written + self.filled] = self.buffer[: self.filled]
            self.written += self.filled
            self.filled = 0

    def close(self):
        self._flush()
        if self.written != self.array.shape[0]:
            raise ValueError(f"{self.written} rows written, {self.array.shape[0]} expected")
        self.buffer = None


class VoxelStoreWriter:
    """Streaming writer of a voxel store into an (empty, temporary) directory.

    Use inside :func:`brainalign._io.atomic_output`; ``append`` blocks of trials in order, then
    ``finish``. Memory: one chunk row of ``betas`` (chunk_rows x n_voxels float32).

    Parameters
    ----------
    path : Path
        Directory to create (must not exist).
    n_trials, n_voxels : int
        Final shape of ``betas``.
    chunks : (int, int), optional
        Chunk shape of ``betas``; default (250, 4096) clipped to the shape.
    """

    def __init__(self, path, n_trials: int, n_voxels: int, chunks=None):
        zarr = _zarr()
        self.path = Path(path)
        self.n_trials, self.n_voxels = int(n_trials), int(n_voxels)
        if chunks is None:
            chunks = (DEFAULT_TRIAL_CHUNK, DEFAULT_VOXEL_CHUNK)
        chunks = (max(1, min(chunks[0], self.n_trials)), max(1, min(chunks[1], self.n_voxels)))
        self.group = zarr.open_group(str(self.path), mode="w-", zarr_format=3)
        betas = self.group.create_array(
            "betas", shape=(self.n_trials, self.n_voxels), chunks=chunks, dtype="float32",
            compressors=_compressors(), fill_value=np.float32("nan"),
        )
        self._rows = _BlockWriter(betas, chunks[0])

    def append(self, block):
        """Append trials: float (n_block_trials, n_voxels)."""
        self._rows.append(block)

    def add_mean_volume(self, volume, source: str):
        """Store the subject's mean image on the betas' grid (the background of brain maps; optional).

        Parameters
        ----------
        volume : float array (X, Y, Z), the grid passed to :meth:`finish`
        source : str
            What it is, e.g. the dataset file it was read from; kept as the array's attr ``source``.
        """
        volume = np.asarray(volume, dtype=np.float32)
        if volume.ndim != 3:
            raise ValueError(f"mean volume must be 3-D (X, Y, Z), got shape {volume.shape}")
        arr = self.group.create_array(MEAN_VOLUME, data=np.nan_to_num(volume), chunks=volume.shape,
                                      compressors=_compressors())
        arr.attrs["source"] = str(source)

    def finish(self, trials, voxel_ijk, grid_shape, affine, rois=None, ncsnr=None, attrs=None, exclude=None):
        """Write the remaining arrays, the trial table and the group attrs (see :func:`write_voxel_store`).

        Parameters
        ----------
        exclude : dict, optional
            ``{reason: bool (n_voxels,)}`` with reasons from :data:`EXCLUSION_REASONS`: voxels to leave out of
            the store after all trials were appended (their ``betas`` columns are dropped; ``voxel_ijk``,
            ``ncsnr`` and the ROIs are subset alike). They are recorded in ``excluded/voxel_ijk`` (int32
            (n_excluded, 3)), ``excluded/reason`` (uint8 (n_excluded,), index into the group attr
            ``excluded_voxels["reasons"]``) and the counts in ``excluded_voxels``. A voxel listed under several
            reasons counts under the first.
        """
        self._rows.close()
        voxel_ijk = np.asarray(voxel_ijk)
        excluded = _exclusion(exclude, self.n_voxels, voxel_ijk)
        keep = excluded["keep"]
        n_keep = int(keep.sum())
        if n_keep == 0 and self.n_voxels:
            raise ValueError("every voxel is excluded")
        if n_keep < self.n_voxels:
            self._drop_columns(keep)
            rois = {k: ((np.asarray(v[0])[keep], v[1]) if isinstance(v, tuple) else np.asarray(v)[keep])
                    for k, v in (rois or {}).items()}
            ncsnr = None if ncsnr is None else np.asarray(ncsnr)[keep]
            voxel_ijk = voxel_ijk[keep]
        ex = self.group.create_group("excluded")
        ex.create_array("voxel_ijk", data=excluded["ijk"].astype(np.int32), chunks=(max(1, len(excluded["ijk"])), 3))
        ex.create_array("reason", data=excluded["reason"], chunks=(max(1, len(excluded["reason"])),))
        attrs = dict(attrs or {}, excluded_voxels={"reasons": list(EXCLUSION_REASONS), "counts": excluded["counts"],
                                                   "kept": n_keep, "selected": self.n_voxels})
        _write_voxel_meta(self.group, self.path, self.n_trials, n_keep, trials, voxel_ijk,
                          grid_shape, affine, rois, ncsnr, attrs)

    def _drop_columns(self, keep):
        """Rewrite ``betas`` with only the kept voxel columns, one chunk row at a time."""
        old = self.group["betas"]
        chunks = (old.chunks[0], max(1, min(old.chunks[1], int(keep.sum()))))
        new = self.group.create_array(
            "betas_kept", shape=(old.shape[0], int(keep.sum())), chunks=chunks, dtype="float32",
            compressors=_compressors(), fill_value=np.float32("nan"),
        )
        for r0 in range(0, old.shape[0], chunks[0]):
            new[r0:r0 + chunks[0]] = old[r0:r0 + chunks[0]][:, keep]
        # zarr v3 array metadata does not name the array: the folder can simply take the old one's place
        shutil.rmtree(self.path / "betas")
        os.rename(self.path / "betas_kept", self.path / "betas")


def _exclusion(exclude, n_voxels, voxel_ijk):
    """Kept-voxel mask, excluded voxels' ijk and reason codes, counts per reason."""
    reason = np.zeros(n_voxels, dtype=np.uint8)  # 0 = kept, k = EXCLUSION_REASONS[k - 1]
    for name, mask in (exclude or {}).items():
        if name not in EXCLUSION_REASONS:
            raise ValueError(f"unknown exclusion reason {name!r}; known: {EXCLUSION_REASONS}")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n_voxels,):
            raise ValueError(f"exclusion mask {name!r} has shape {mask.shape}, expected ({n_voxels},)")
        reason[mask & (reason == 0)] = EXCLUSION_REASONS.index(name) + 1
    out = reason > 0
    counts = {name: int((reason == k + 1).sum()) for k, name in enumerate(EXCLUSION_REASONS)}
    return {"keep": ~out, "ijk": voxel_ijk[out].reshape(-1, 3), "reason": (reason[out] - 1).astype(np.uint8),
            "counts": counts}


def _write_voxel_meta(group, path, n_trials, n_voxels, trials, voxel_ijk, grid_shape, affine, rois,
                      ncsnr, attrs):
    voxel_ijk = np.asarray(voxel_ijk)
    if voxel_ijk.shape != (n_voxels, 3):
        raise ValueError(f"voxel_ijk has shape {voxel_ijk.shape}, expected ({n_voxels}, 3)")
    grid_shape = [int(v) for v in grid_shape]
    if len(grid_shape) != 3:
        raise ValueError(f"grid_shape must have 3 entries, got {grid_shape}")
    if n_voxels and (voxel_ijk.min() < 0 or np.any(voxel_ijk.max(axis=0) >= np.array(grid_shape))):
        raise ValueError("voxel_ijk outside grid_shape")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {affine.shape}")
    trials = _check_trials(trials, n_trials, path)
    group.create_array("voxel_ijk", data=voxel_ijk.astype(np.int32), chunks=(max(1, n_voxels), 3))
    if ncsnr is not None:
        ncsnr = np.asarray(ncsnr, dtype=np.float32)
        if ncsnr.shape != (n_voxels,):
            raise ValueError(f"ncsnr has shape {ncsnr.shape}, expected ({n_voxels},)")
        group.create_array("ncsnr", data=ncsnr, chunks=(max(1, n_voxels),))
    roi_group = group.create_group("roi")
    for name, value in (rois or {}).items():
        if isinstance(value, tuple):
            labels, names = value
            labels = np.asarray(labels)
            arr = roi_group.create_array(name, data=labels.astype(np.int16), chunks=(max(1, n_voxels),))
            arr.attrs["kind"] = "labels"
            arr.attrs["labels"] = {str(int(k)): str(v) for k, v in sorted(names.items()) if int(k) != 0}
        else:
            member = np.asarray(value)
            if member.dtype != bool:
                raise ValueError(f"ROI {name!r}: pass a bool membership array or (int labels, names)")
            arr = roi_group.create_array(name, data=member, chunks=(max(1, n_voxels),))
            arr.attrs["kind"] = "membership"
        if arr.shape != (n_voxels,):
            raise ValueError(f"ROI {name!r} has shape {arr.shape}, expected ({n_voxels},)")
    trials.to_parquet(Path(path) / TRIALS_FILE, index=False)
    _write_chunk_manifest(path)
    meta = {"dataset": "unknown", "subject": "unknown", "zscored": False, "synthetic": False, "provenance": {}}
    meta.update(attrs or {})
    meta.update({"grid_shape": grid_shape, "affine": affine.tolist(),
                 "format": VOXEL_FORMAT, "format_version": FORMAT_VERSION})
    group.attrs.update(_jsonable(meta))


def write_voxel_store(path, betas, trials, voxel_ijk, grid_shape, affine, rois=None, ncsnr=None,
                      attrs=None, chunks=None):
    """Write a complete voxel store atomically.

    Parameters
    ----------
    path : str or Path
        Output ``*.zarr`` directory (replaced if it exists).
    betas : array-like float (n_trials, n_voxels)
    trials : pandas.DataFrame (n_trials rows)
        Columns ``session`` (1-based), ``trial`` (1-based in session), ``stimulus`` (int or str),
        ``repetition`` (0-based), ``shared`` (bool); extra columns are kept.
    voxel_ijk : int array (n_voxels, 3)
        Voxel indices in the source grid.
    grid_shape : (X, Y, Z)
    affine : (4, 4) voxel-to-world matrix of the grid.
    rois : dict, optional
        ``name -> bool (n_voxels,)`` membership (overlapping masks) or
        ``name -> (int (n_voxels,) labels, {label: label_name})`` for an exclusive atlas (0 = unlabelled).
    ncsnr : float (n_voxels,), optional
    attrs : dict, optional
        Group attrs: ``dataset``, ``subject``, ``zscored``, ``synthetic``, ``provenance``, ...
    chunks : (int, int), optional
        Chunk shape of ``betas``.

    Returns
    -------
    Path
    """
    betas = np.asarray(betas, dtype=np.float32)
    if betas.ndim != 2:
        raise ValueError(f"betas must be 2-D (n_trials, n_voxels), got {betas.shape}")
    path = Path(path)
    with atomic_output(path) as tmp:
        w = VoxelStoreWriter(tmp, betas.shape[0], betas.shape[1], chunks=chunks)
        w.append(betas)
        w.finish(trials, voxel_ijk, grid_shape, affine, rois=rois, ncsnr=ncsnr, attrs=attrs)
    return path


def _group_means(array, codes, n_groups: int, select):
    """Mean of the rows of each group of a chunked array, read one chunk row at a time.

    The one routine behind every store average: each block of rows is summed into its groups with a
    sparse (n_groups, n_rows) indicator product, in float64, so memory is one chunk row plus the sums.

    Parameters
    ----------
    array : zarr.Array (n_rows, ...)
    codes : int array (n_rows,), group of each row in ``[0, n_groups)``; -1 = row not used
    n_groups : int
    select : callable, block (n_block_rows, ...) -> block (n_block_rows, ...), picks columns (e.g. voxels)

    Returns
    -------
    means : float32 ndarray (n_groups, n_selected_columns) (selected trailing axes flattened); NaN for an
        empty group
    counts : int64 ndarray (n_groups,), rows averaged into each group
    """
    from scipy import sparse

    codes = np.asarray(codes)
    counts = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.int64)
    step = array.chunks[0]
    sums = None
    for r0 in range(0, array.shape[0], step):
        c = codes[r0:r0 + step]
        use = c >= 0
        if not use.any():
            continue
        block = select(array[r0:r0 + step]).astype(np.float64)
        block = block.reshape(block.shape[0], -1)
        ind = sparse.csr_matrix((np.ones(use.sum()), (c[use], np.flatnonzero(use))), shape=(n_groups, len(c)))
        part = ind @ block
        sums = part if sums is None else sums + part
    if sums is None:
        sums = np.zeros((n_groups, select(array[0:1]).reshape(1, -1).shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums / counts[:, None]).astype(np.float32)
    return means, counts


class _Store:
    """Common reader behaviour: group, attrs, trial table."""

    _format = None
    _data_name = None

    def __init__(self, path):
        zarr = _zarr()
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise InputError(self.path, "not a store (missing, or an incomplete/killed write)")
        try:
            self.group = zarr.open_group(str(self.path), mode="r")
        except Exception as exc:  # corrupt metadata
            raise InputError(self.path, f"cannot open as a zarr group: {exc}") from exc
        self.attrs = dict(self.group.attrs)
        if self.attrs.get("format") != self._format:
            raise InputError(self.path, f"not a {self._format} (group attr format={self.attrs.get('format')!r}); "
                                        "incomplete or a different kind of store")
        version = self.attrs.get("format_version")
        if version not in READABLE_VERSIONS:
            raise InputError(self.path, f"store layout version {version!r}; this brainalign reads {READABLE_VERSIONS}")
        tpath = self.path / TRIALS_FILE
        if not tpath.is_file():
            raise InputError(tpath, "trial table missing")
        if version >= 2:
            check_store_files(self.path)
        if self._data_name not in self.group:
            raise InputError(self.path, f"store has no {self._data_name!r} array")
        self.trials = pd.read_parquet(tpath)
        n = self.group[self._data_name].shape[0]
        if len(self.trials) != n:
            raise InputError(tpath, f"{len(self.trials)} rows but {self._data_name} has {n} trials")

    def __repr__(self):
        return f"{type(self).__name__}({str(self.path)!r})"

    def _stimulus_codes(self, stimuli):
        """Unique stimulus ids (requested order or sorted) and the code of every trial (-1 = not used)."""
        col = self.trials["stimulus"].to_numpy()
        if stimuli is None:
            ids = np.unique(col)
        else:
            ids = np.asarray(list(stimuli), dtype=col.dtype)
            if len(set(ids.tolist())) != len(ids):
                raise InputError(self.path, "requested stimuli contain duplicates")
            present = set(col.tolist())
            missing = [s for s in ids.tolist() if s not in present]
            if missing:
                raise InputError(self.path, f"{len(missing)} requested stimuli are not in the store, e.g. {missing[:5]}")
        lookup = pd.Index(ids)
        codes = lookup.get_indexer(col)
        return ids, codes

    def _repetition_ranks(self) -> np.ndarray:
        """0-based rank of each trial among its stimulus's trials (by ``repetition``, ties by row order).

        Returns
        -------
        int64 ndarray (n_trials,)
        """
        ranks = self.trials.groupby("stimulus", sort=False)["repetition"].rank(method="first")
        return ranks.to_numpy(dtype=np.int64) - 1

    def _mean_rows(self, array, stimuli, select):
        """Average rows of ``array`` over repetitions; ``select(block) -> block`` picks columns.

        Returns
        -------
        ids : ndarray (n_stimuli,)
        means : float32 (n_stimuli, n_selected_columns) (NaN for a stimulus without trials)
        n_reps : int64 (n_stimuli,)
        """
        ids, codes = self._stimulus_codes(stimuli)
        means, n_reps = _group_means(array, codes, len(ids), select)
        return ids, means, n_reps

    def _mean_fold_rows(self, array, stimuli, n_folds: int, select):
        """Average rows of ``array`` per stimulus and fold (fold = repetition rank modulo ``n_folds``).

        Returns
        -------
        ids : ndarray (n_stimuli,)
        means : float32 (n_folds, n_stimuli, n_selected_columns)
        counts : int64 (n_folds, n_stimuli), trials averaged into each mean
        """
        n_folds = int(n_folds)
        if n_folds < 1:
            raise ValueError(f"n_folds must be >= 1, got {n_folds}")
        ids, codes = self._stimulus_codes(stimuli)
        n_stim = len(ids)
        n_reps = np.bincount(codes[codes >= 0], minlength=n_stim)
        if (n_reps < n_folds).any():  # checked before reading: every fold needs a trial of every stimulus
            short = ids[n_reps < n_folds]
            raise InputError(self.path, f"{len(short)} stimuli have fewer than {n_folds} repetitions (one per fold), "
                                        f"e.g. {short[:5].tolist()}")
        group = np.where(codes >= 0, (self._repetition_ranks() % n_folds) * n_stim + codes, -1)
        means, counts = _group_means(array, group, n_folds * n_stim, select)
        return ids, means.reshape(n_folds, n_stim, -1), counts.reshape(n_folds, n_stim)


class VoxelStore(_Store):
    """Reader of a voxel store (see :func:`open_voxel_store`)."""

    _format = VOXEL_FORMAT
    _data_name = "betas"

    def __init__(self, path):
        super().__init__(path)
        self.betas = self.group["betas"]
        self.voxel_ijk = np.asarray(self.group["voxel_ijk"][...])
        self.grid_shape = tuple(int(v) for v in self.attrs["grid_shape"])
        self.affine = np.asarray(self.attrs["affine"], dtype=np.float64)
        self.ncsnr = np.asarray(self.group["ncsnr"][...]) if "ncsnr" in self.group else None
        self._rois = {}
        if "roi" in self.group:
            roi = self.group["roi"]
            for name in sorted(roi.array_keys()):
                arr = roi[name]
                self._rois[name] = (dict(arr.attrs), arr)

    @property
    def n_voxels(self) -> int:
        return int(self.betas.shape[1])

    @property
    def n_trials(self) -> int:
        return int(self.betas.shape[0])

    def excluded_voxels(self):
        """Voxels of the selection left out of the store at ingestion, and why (empty for older stores).

        Returns
        -------
        voxel_ijk : int32 ndarray (n_excluded, 3), indices in the source grid
        reasons : ndarray of str (n_excluded,), each one of :data:`EXCLUSION_REASONS`
        """
        if "excluded" not in self.group:
            return np.zeros((0, 3), dtype=np.int32), np.array([], dtype=str)
        ex = self.group["excluded"]
        codes = np.asarray(ex["reason"][...], dtype=np.int64)
        names = np.asarray(self.attrs.get("excluded_voxels", {}).get("reasons", EXCLUSION_REASONS), dtype=str)
        return np.asarray(ex["voxel_ijk"][...], dtype=np.int32).reshape(-1, 3), names[codes]

    def roi_atlases(self) -> list[str]:
        """Names of the integer-label atlases (``roi/<atlas>``)."""
        return [n for n, (a, _) in self._rois.items() if a.get("kind") == "labels"]

    def roi_labels(self, atlas: str):
        """Integer labels of an atlas and its ``{int: name}`` table.

        Returns
        -------
        labels : int16 ndarray (n_voxels,)
        names : dict[int, str]
        """
        if atlas not in self.roi_atlases():
            raise InputError(self.path, f"no ROI atlas {atlas!r}; atlases: {self.roi_atlases()}")
        a, arr = self._rois[atlas]
        return np.asarray(arr[...]), {int(k): v for k, v in a.get("labels", {}).items()}

    def roi_names(self) -> list[str]:
        """All ROI names: ``"atlas/label"`` for atlas labels, plain names for membership masks."""
        names = []
        for name, (a, _) in self._rois.items():
            if a.get("kind") == "labels":
                for k in sorted(a.get("labels", {}), key=int):
                    names.append(f"{name}/{a['labels'][k]}")
            else:
                names.append(name)
        return names

    def roi_mask(self, name: str) -> np.ndarray:
        """Boolean voxel mask (n_voxels,) of ``"atlas/label"``, ``"atlas"`` (any label > 0) or a membership ROI."""
        if name in self._rois:
            a, arr = self._rois[name]
            values = np.asarray(arr[...])
            return values.astype(bool) if a.get("kind") != "labels" else values > 0
        atlas, sep, label = name.partition("/")
        if sep and atlas in self._rois and self._rois[atlas][0].get("kind") == "labels":
            a, arr = self._rois[atlas]
            keys = [int(k) for k, v in a.get("labels", {}).items() if v == label]
            if keys:
                return np.isin(np.asarray(arr[...]), keys)
        raise InputError(self.path, f"unknown ROI {name!r}; known: {self.roi_names() + list(self._rois)}")

    def _voxel_index(self, voxels):
        if voxels is None:
            return slice(None)
        if isinstance(voxels, str):
            return np.flatnonzero(self.roi_mask(voxels))
        v = np.asarray(voxels)
        if v.dtype == bool:
            if v.shape != (self.n_voxels,):
                raise InputError(self.path, f"voxel mask has shape {v.shape}, expected ({self.n_voxels},)")
            return np.flatnonzero(v)
        return v.astype(np.int64)

    def mean_by_stimulus(self, stimuli=None, voxels=None):
        """Average betas over the repetitions of each stimulus.

        Parameters
        ----------
        stimuli : sequence, optional
            Stimulus ids (same type as ``trials.stimulus``) in the wanted order; default all, sorted.
        voxels : bool (n_voxels,), int indices, or an ROI name, optional

        Returns
        -------
        stimulus_ids : ndarray (n_stimuli,)
        means : float32 ndarray (n_stimuli, n_voxels_selected)
        n_reps : int64 ndarray (n_stimuli,)
        """
        idx = self._voxel_index(voxels)
        return self._mean_rows(self.betas, stimuli, lambda b: b[:, idx])

    def mean_by_fold(self, stimuli, n_folds: int, voxels=None):
        """Average betas per stimulus within each of ``n_folds`` folds of its repetitions (for crossnobis RDMs).

        A trial's fold is its repetition rank (``repetition``, ties by row order) modulo ``n_folds``.

        Parameters
        ----------
        stimuli : sequence or None
            Stimulus ids (same type as ``trials.stimulus``) in the wanted order; None = all, sorted.
        n_folds : int >= 1
        voxels : bool (n_voxels,), int indices, or an ROI name, optional

        Returns
        -------
        stimulus_ids : ndarray (n_stimuli,)
        means : float32 ndarray (n_folds, n_stimuli, n_voxels_selected)
        counts : int64 ndarray (n_folds, n_stimuli), trials averaged into each mean

        Raises
        ------
        InputError
            If a stimulus is missing from the store or has fewer than ``n_folds`` repetitions.
        """
        idx = self._voxel_index(voxels)
        return self._mean_fold_rows(self.betas, stimuli, n_folds, lambda b: b[:, idx])

    def repetitions_by_stimulus(self, stimuli, voxels=None):
        """Single-trial betas of each stimulus, one slot per repetition (e.g. test-set noise ceilings).

        Parameters
        ----------
        stimuli : sequence
            Stimulus ids (same type as ``trials.stimulus``) in the wanted order.
        voxels : bool (n_voxels,), int indices, or an ROI name, optional

        Returns
        -------
        stimulus_ids : ndarray (n_stimuli,)
        reps : float32 ndarray (n_stimuli, max_reps, n_voxels_selected)
            Slot r holds the trial of repetition rank r (``repetition``, ties by row order); NaN where a
            stimulus has fewer than ``max_reps`` repetitions.
        n_reps : int64 ndarray (n_stimuli,)
        """
        ids, codes = self._stimulus_codes(stimuli)
        rows = np.flatnonzero(codes >= 0)
        rank = self._repetition_ranks()[rows]
        n_reps = np.bincount(codes[rows], minlength=len(ids)).astype(np.int64)
        betas = np.asarray(self.betas.get_orthogonal_selection((rows, self._voxel_index(voxels))), dtype=np.float32)
        reps = np.full((len(ids), max(int(n_reps.max(initial=0)), 1), betas.shape[1]), np.nan, dtype=np.float32)
        reps[codes[rows], rank] = betas
        return ids, reps, n_reps

    def mean_volume(self):
        """The subject's mean image on the store's grid: the background brain maps are drawn on.

        The stored ``mean_volume`` (ingestion reads the dataset's mean image, e.g. NSD's ``mean.nii.gz``, else
        averages the betas before z-scoring; docs/store.md); for a store without one, the mean of the betas over
        trials in the stored voxels (0 elsewhere), or, when that is flat (z-scored betas average to 0 in every
        voxel), the stored voxels as 1.

        Returns
        -------
        nibabel.Nifti1Image, float32 (X, Y, Z) with the store's affine; its header's ``descrip`` says which
        """
        import nibabel as nib

        if MEAN_VOLUME in self.group:
            arr = self.group[MEAN_VOLUME]
            volume, what = np.asarray(arr[...], dtype=np.float32), str(arr.attrs.get("source", "stored"))
            if volume.shape != self.grid_shape:
                raise InputError(self.path, f"mean_volume has shape {volume.shape}, the grid is {self.grid_shape}")
        else:
            means, _ = _group_means(self.betas, np.zeros(self.n_trials, dtype=np.int64), 1, lambda b: b)
            mean = np.nan_to_num(means[0])
            flat = not mean.size or np.ptp(mean) <= 1e-6 * max(1.0, float(np.abs(mean).max()))
            values, what = ((np.ones_like(mean), "stored voxels (betas average to a constant)") if flat
                            else (mean, "mean of the betas over trials"))
            volume = np.asarray(self.to_nifti(values, fill_value=0.0).dataobj, dtype=np.float32)
        img = nib.Nifti1Image(volume, self.affine)
        img.header["descrip"] = what[:79].encode("ascii", "replace")
        return img

    def to_nifti(self, values, fill_value=0.0):
        """Put per-voxel values back into the source grid.

        Parameters
        ----------
        values : array (n_voxels,) or (n_voxels, k)
        fill_value : float
            Value outside the stored voxels.

        Returns
        -------
        nibabel.Nifti1Image of shape grid_shape (+ (k,)) with the store's affine.
        """
        import nibabel as nib

        values = np.asarray(values)
        if values.shape[0] != self.n_voxels:
            raise InputError(self.path, f"{values.shape[0]} values for {self.n_voxels} voxels")
        dtype = np.float32 if values.dtype.kind in "fb" or np.isnan(fill_value) else values.dtype
        vol = np.full(self.grid_shape + values.shape[1:], fill_value, dtype=dtype)
        i, j, k = self.voxel_ijk.T
        vol[i, j, k] = values
        return nib.Nifti1Image(vol, self.affine)


def open_voxel_store(path) -> VoxelStore:
    """Open a voxel store for reading; raises InputError if missing, incomplete or not a voxel store."""
    return VoxelStore(path)


# ---------------------------------------------------------------------------------------------- EEG


class EEGStoreWriter:
    """Streaming writer of an EEG store (``eeg`` float32 (n_trials, n_channels, n_times)).

    Parameters
    ----------
    path : Path
        Directory to create (must not exist).
    n_trials, n_channels, n_times : int
    trial_chunk : int
        Trials per chunk.
    """

    def __init__(self, path, n_trials, n_channels, n_times, trial_chunk=256):
        zarr = _zarr()
        self.path = Path(path)
        self.n_trials = int(n_trials)
        chunk = max(1, min(trial_chunk, self.n_trials))
        self.group = zarr.open_group(str(self.path), mode="w-", zarr_format=3)
        arr = self.group.create_array(
            "eeg", shape=(self.n_trials, int(n_channels), int(n_times)),
            chunks=(chunk, int(n_channels), int(n_times)), dtype="float32",
            compressors=_compressors(), fill_value=np.float32("nan"),
        )
        self._rows = _BlockWriter(arr, chunk)

    def append(self, block):
        """Append trials: float (n_block_trials, n_channels, n_times)."""
        self._rows.append(block)

    def finish(self, trials, ch_names, times, attrs=None):
        self._rows.close()
        shape = self._rows.array.shape
        ch_names = [str(c) for c in ch_names]
        times = [float(t) for t in np.asarray(times).ravel()]
        if len(ch_names) != shape[1] or len(times) != shape[2]:
            raise ValueError(f"{len(ch_names)} channel names / {len(times)} times for eeg of shape {shape}")
        trials = _check_trials(trials, self.n_trials, self.path)
        trials.to_parquet(self.path / TRIALS_FILE, index=False)
        _write_chunk_manifest(self.path)
        meta = {"dataset": "unknown", "subject": "unknown", "zscored": False, "synthetic": False, "provenance": {}}
        meta.update(attrs or {})
        meta.update({"ch_names": ch_names, "times": times, "format": EEG_FORMAT, "format_version": FORMAT_VERSION})
        self.group.attrs.update(_jsonable(meta))


def write_eeg_store(path, eeg, trials, ch_names, times, attrs=None):
    """Write a complete EEG store atomically.

    Parameters
    ----------
    eeg : float (n_trials, n_channels, n_times)
    trials : pandas.DataFrame, one row per trial (condition x repetition), columns as in the voxel store
    ch_names : list[str] (n_channels,)
    times : float (n_times,) seconds
    attrs : dict, optional
    """
    eeg = np.asarray(eeg, dtype=np.float32)
    if eeg.ndim != 3:
        raise ValueError(f"eeg must be 3-D (n_trials, n_channels, n_times), got {eeg.shape}")
    path = Path(path)
    with atomic_output(path) as tmp:
        w = EEGStoreWriter(tmp, *eeg.shape)
        w.append(eeg)
        w.finish(trials, ch_names, times, attrs)
    return path


class EEGStore(_Store):
    """Reader of an EEG store (see :func:`open_eeg_store`)."""

    _format = EEG_FORMAT
    _data_name = "eeg"

    def __init__(self, path):
        super().__init__(path)
        self.eeg = self.group["eeg"]
        self.ch_names = list(self.attrs["ch_names"])
        self.times = np.asarray(self.attrs["times"], dtype=np.float64)

    def mean_by_stimulus(self, stimuli=None):
        """Average trials over repetitions.

        Returns
        -------
        stimulus_ids : ndarray (n_stimuli,)
        means : float32 (n_stimuli, n_channels, n_times)
        n_reps : int64 (n_stimuli,)
        """
        ids, means, n = self._mean_rows(self.eeg, stimuli, lambda b: b)
        return ids, means.reshape((len(ids),) + tuple(self.eeg.shape[1:])), n

    def mean_by_fold(self, stimuli, n_folds: int):
        """Average trials per stimulus within each fold of its repetitions, as :meth:`VoxelStore.mean_by_fold`.

        Returns
        -------
        stimulus_ids : ndarray (n_stimuli,)
        means : float32 ndarray (n_folds, n_stimuli, n_channels, n_times)
        counts : int64 ndarray (n_folds, n_stimuli)
        """
        ids, means, counts = self._mean_fold_rows(self.eeg, stimuli, n_folds, lambda b: b)
        return ids, means.reshape(means.shape[:2] + tuple(self.eeg.shape[1:])), counts


def open_eeg_store(path) -> EEGStore:
    """Open an EEG store for reading; raises InputError if missing, incomplete or not an EEG store."""
    return EEGStore(path)
