"""THINGS-EEG2 preprocessed EEG -> EEG store (layout: docs/datasets.md §3)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_output, progress
from ..errors import InputError
from ..store import EEGStoreWriter
from .inputs import check_out, check_root, provenance
from .screening import check_eeg

PARTS = ("training", "test")
_META_KEYS = {"training": ("train_img_files", "train_img_concepts"), "test": ("test_img_files", "test_img_concepts")}


def parse_subject(subject) -> int:
    """``1``, ``"01"``, ``"sub-01"`` -> 1."""
    m = re.fullmatch(r"(?:sub-)?0*(\d+)", str(subject).strip())
    if not m or not 1 <= int(m.group(1)) <= 10:
        raise InputError("--subject", f"{subject!r} is not a THINGS-EEG2 subject (1..10 or sub-01..)")
    return int(m.group(1))


def _load_pickled_dict(path, keys):
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        obj = np.load(path, allow_pickle=True)
        obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj
    except Exception as exc:
        raise InputError(path, f"cannot load (.npy with a pickled dict expected; corrupt or truncated?) "
                               f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise InputError(path, f"expected a pickled dict, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise InputError(path, f"keys {missing} missing (has {sorted(obj)})")
    return obj


def _image_names(meta, key, path):
    """A metadata list of image file (or concept folder) names: strings, distinct for file names."""
    names = list(np.asarray(meta[key], dtype=object).ravel()) if not isinstance(meta[key], list) else list(meta[key])
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise InputError(path, f"{key} holds {len(bad)} entries that are not names (e.g. {bad[0]!r})")
    if key.endswith("_files") and len(set(names)) != len(names):
        dup = pd.Series(names).value_counts()
        raise InputError(path, f"{key} lists {dup.index[0]!r} {int(dup.iloc[0])} times; image file names are distinct")
    return names


def ingest_things_eeg2(root, subject, out, parts=PARTS, chunk_trials=256):
    """Ingest THINGS-EEG2 preprocessed EEG of one subject into an EEG store.

    Rows: for each part (training, then test), each image condition in file order, each repetition.

    Parameters
    ----------
    root : path
        Contains ``eeg_dataset/preprocessed_data/sub-XX/`` and ``image_set/image_metadata.npy``.
    subject : int or str
    out : path
        Output ``*.zarr``.
    parts : sequence of ``"training"`` / ``"test"``

    Returns
    -------
    Path of the store: ``eeg`` float32 (n_conditions x n_repetitions, n_channels, n_times); trial table with
    ``session`` = 1 (sessions are merged in the preprocessed files), ``trial`` = 1-based row, ``stimulus`` =
    image file name, ``repetition`` 0-based, ``shared`` = test image, plus ``part``, ``condition`` (0-based row
    in the part's file) and ``concept``.
    """
    root = check_root(root)
    out = check_out(out)
    num = parse_subject(subject)
    sid = f"sub-{num:02d}"
    parts = list(parts)
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise InputError("--parts", f"{parts}; choose from {PARTS}")
    subj_dir = root / "eeg_dataset" / "preprocessed_data" / sid
    if not subj_dir.is_dir():
        raise InputError(subj_dir, "subject folder not found")
    meta_path = root / "image_set" / "image_metadata.npy"
    meta = _load_pickled_dict(meta_path, [k for p in parts for k in _META_KEYS[p]])

    data, ch_names, times, files = {}, None, None, []
    for part in parts:
        path = subj_dir / f"preprocessed_eeg_{part}.npy"
        d = _load_pickled_dict(path, ("preprocessed_eeg_data", "ch_names", "times"))
        arr = np.asarray(d["preprocessed_eeg_data"])
        if arr.dtype.kind not in "iuf":
            raise InputError(path, f"preprocessed_eeg_data holds {arr.dtype} values; expected real numbers")
        names = [str(c) for c in d["ch_names"]]
        try:
            t = np.asarray(d["times"], dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"times are not numbers ({exc})") from None
        if not np.isfinite(t).all() or (len(t) > 1 and not (np.diff(t) > 0).all()):
            raise InputError(path, "times must be finite and increasing")
        if len(set(names)) != len(names):
            raise InputError(path, f"ch_names repeat a channel: {names}")
        if arr.ndim != 4:
            raise InputError(path, f"preprocessed_eeg_data has shape {arr.shape}; expected (conditions, repetitions, channels, times)")
        if arr.shape[2] != len(names) or arr.shape[3] != len(t):
            raise InputError(path, f"data shape {arr.shape} disagrees with {len(names)} ch_names / {len(t)} times")
        img_files = _image_names(meta, _META_KEYS[part][0], meta_path)
        _image_names(meta, _META_KEYS[part][1], meta_path)
        if len(img_files) != arr.shape[0]:
            raise InputError(path, f"{arr.shape[0]} image conditions but image_metadata lists {len(img_files)} {part} images")
        if ch_names is None:
            ch_names, times = names, t
        elif names != ch_names or len(t) != len(times) or not np.allclose(t, times):
            raise InputError(path, "channels or times differ from the other part")
        check_eeg(arr, path)
        data[part] = arr
        files.append(path)

    rows = []
    for part in parts:
        n_cond, n_rep = data[part].shape[:2]
        img_files = [str(f) for f in meta[_META_KEYS[part][0]]]
        concepts = [str(c) for c in meta[_META_KEYS[part][1]]]
        rows.append(pd.DataFrame({
            "part": part,
            "condition": np.repeat(np.arange(n_cond), n_rep),
            "stimulus": np.repeat(np.asarray(img_files, dtype=object), n_rep).astype(str),
            "concept": np.repeat(np.asarray(concepts, dtype=object), n_rep).astype(str),
            "repetition": np.tile(np.arange(n_rep), n_cond),
            "shared": part == "test",
        }))
    trials = pd.concat(rows, ignore_index=True)
    trials.insert(0, "session", 1)
    trials.insert(1, "trial", np.arange(1, len(trials) + 1))
    trials = trials[["session", "trial", "stimulus", "repetition", "shared", "part", "condition", "concept"]]

    attrs = {"dataset": "things-eeg2", "subject": sid, "zscored": False, "synthetic": False, "units": "MVNN-whitened",
             "provenance": provenance(files + [meta_path], {"subject": sid, "parts": parts}, "ingest things-eeg2",
                                      root)}
    with atomic_output(out) as tmp:
        writer = EEGStoreWriter(tmp, len(trials), len(ch_names), len(times), trial_chunk=chunk_trials)
        for part in progress(parts, desc=f"THINGS-EEG2 {sid}", unit="part"):
            arr = data.pop(part)
            n_cond, n_rep = arr.shape[:2]
            step = max(1, 4096 // n_rep)
            for c0 in range(0, n_cond, step):
                block = arr[c0:c0 + step].reshape(-1, arr.shape[2], arr.shape[3])
                writer.append(block.astype(np.float32))
            del arr
        writer.finish(trials, ch_names, times, attrs)
    return out
