"""Held-out discipline: what each trained model saw, the evaluation sets, and the refusal of any overlap.

Every training run (``brainalign train``) writes a **training record** next to its weights: ``stimuli.parquet``
with one row per stimulus it used for training (``role = "train"``) or for model selection (``role = "val"``),
and the subject whose responses were used. The feature cache of a trained model copies that record
(:attr:`brainalign.features.FeatureCache.training_stimuli`), so every evaluation that opens a feature cache knows
what the model saw. Every evaluation of a model calls :func:`check_disjoint` on the stimuli it scores, and
refuses any overlap with :class:`~brainalign.errors.InputError`. Stimuli are compared as strings (``str(id)``):
NSD nsdIds name the same image in every subject, so a model trained on subject 1's image 123 has seen subject
2's image 123 too.

Which weights a model started from is :mod:`brainalign.model_provenance`'s. See docs/training.md (training
records, controls) and docs/rsa.md (evaluation sets).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError

#: file name of a training run's record, next to its ``backbone.pt``
TRAINING_RECORD = "stimuli.parquet"
#: columns of a training record
RECORD_COLUMNS = ("stimulus", "role", "subject")
#: roles a stimulus can have in a training record
ROLES = ("train", "val")
#: how many overlapping ids an error message shows
_EXAMPLES = 5


# --------------------------------------------------------------------------------------------- records

def training_record(train_ids, val_ids, subject) -> pd.DataFrame:
    """The record of one subject's training run: every id used to train or to select the model.

    Parameters
    ----------
    train_ids, val_ids : sequence (n_train,), (n_val,)
        Stimulus ids (any type; stored as ``str``).
    subject : str
        The subject whose responses were paired with the images (the store's ``subject``).

    Returns
    -------
    DataFrame (n_train + n_val, 3)
        Columns ``stimulus`` (str), ``role`` (``train`` | ``val``), ``subject`` (str).
    """
    train = [str(i) for i in np.asarray(train_ids).tolist()]
    val = [str(i) for i in np.asarray(val_ids).tolist()]
    return pd.DataFrame({"stimulus": pd.Series(train + val, dtype=str),
                         "role": pd.Series(["train"] * len(train) + ["val"] * len(val), dtype=str),
                         "subject": pd.Series([str(subject)] * (len(train) + len(val)), dtype=str)})


def normalize_record(record: pd.DataFrame, where="training record") -> pd.DataFrame:
    """A record with the documented columns and dtypes (``str``), duplicates dropped, sorted.

    Raises
    ------
    InputError
        A column is missing or a role is not ``train`` / ``val``.
    """
    missing = [c for c in RECORD_COLUMNS if c not in record.columns]
    if missing:
        raise InputError(where, f"a training record needs the columns {list(RECORD_COLUMNS)}; missing {missing}")
    out = record[list(RECORD_COLUMNS)].astype(str).drop_duplicates()
    bad = sorted(set(out["role"]) - set(ROLES))
    if bad:
        raise InputError(where, f"unknown role(s) {bad} in the training record (roles: {', '.join(ROLES)})")
    return out.sort_values(list(RECORD_COLUMNS), kind="stable").reset_index(drop=True)


def combine_records(records) -> pd.DataFrame:
    """One record from several (e.g. one per training subject, plus the record of the initial weights)."""
    frames = [normalize_record(r) for r in records if r is not None]
    if not frames:
        return normalize_record(pd.DataFrame(columns=list(RECORD_COLUMNS)))
    return normalize_record(pd.concat(frames, ignore_index=True))


def record_sha256(record: pd.DataFrame) -> str:
    """SHA-256 of a record's content (rows as strings, sorted): the same ids, roles and subjects give the same hash,
    however the table was serialised."""
    rows = normalize_record(record).to_numpy().tolist()
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def record_info(record: pd.DataFrame) -> dict:
    """Plain-data summary of a record (stored in checkpoints and feature-cache attrs)."""
    record = normalize_record(record)
    return {"file": TRAINING_RECORD, "sha256": record_sha256(record),
            "n_train": int((record["role"] == "train").sum()), "n_val": int((record["role"] == "val").sum()),
            "subjects": sorted(set(record["subject"]))}


def write_training_record(path, record: pd.DataFrame) -> Path:
    """Write a record as parquet, atomically (``path`` is usually ``<run>/stimuli.parquet``)."""
    from ._io import atomic_output

    path = Path(path)
    with atomic_output(path) as tmp:
        normalize_record(record).to_parquet(tmp, index=False)
    return path


def read_training_record(path, expected_sha256: str | None = None) -> pd.DataFrame:
    """Read a record; with ``expected_sha256`` refuse a record whose content differs (an edited or swapped file).

    Raises
    ------
    InputError
        Missing file, missing columns, or a content hash other than ``expected_sha256``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "training record not found (every trained checkpoint needs the stimuli.parquet "
                               "its training run wrote next to it)")
    record = normalize_record(pd.read_parquet(path), where=path)
    if expected_sha256 is not None and record_sha256(record) != expected_sha256:
        raise InputError(path, "this training record is not the one the checkpoint was trained with "
                               "(content hash differs)")
    return record


# --------------------------------------------------------------------------------------------- the check

def _source(item):
    """(name, record or None) of a feature cache, a ``(name, record)`` pair or a ``(name, ids)`` pair."""
    if isinstance(item, tuple) and len(item) == 2:
        name, rec = item
        if rec is None:
            return str(name), None
        if isinstance(rec, pd.DataFrame):
            return str(name), normalize_record(rec, where=name)
        ids = [str(i) for i in np.asarray(list(rec)).tolist()]
        return str(name), pd.DataFrame({"stimulus": ids, "role": "train", "subject": ""})
    return str(getattr(item, "path", item)), getattr(item, "training_stimuli", None)


def check_disjoint(eval_ids, sources, where: str) -> None:
    """Refuse an evaluation on stimuli that a compared model was trained or selected on.

    Parameters
    ----------
    eval_ids : sequence (n,)
        The stimuli the evaluation scores (compared as ``str``).
    sources : iterable
        Feature caches (:class:`brainalign.features.FeatureCache`: ``.path``, ``.training_stimuli``), or
        ``(name, record DataFrame)`` pairs, or ``(name, sequence of ids)`` pairs (ids used to fit the model).
        A cache or record of ``None`` (an untrained model) never overlaps.
    where : str
        What is evaluated, for the message (``"encoding test stimuli of subj02"``).

    Raises
    ------
    InputError
        Naming the first overlapping model or cache: how many evaluation stimuli it saw, in which roles and
        subjects, and examples.
    """
    evaluated = {str(i) for i in np.asarray(list(eval_ids)).tolist()}
    for item in sources:
        name, record = _source(item)
        if record is None or not len(record) or not evaluated:
            continue
        seen = record[record["stimulus"].isin(evaluated)]
        if len(seen):
            ids = sorted(set(seen["stimulus"]), key=lambda v: (len(v), v))
            roles = ", ".join(f"{role}: {n}" for role, n in seen.groupby("role")["stimulus"].nunique().items())
            subjects = sorted(s for s in set(seen["subject"]) if s)
            raise InputError(name, f"{len(ids)} of the {len(evaluated)} {where} were used to train or select this "
                                   f"model ({roles}{'; subjects ' + ', '.join(subjects) if subjects else ''}), "
                                   f"e.g. {ids[:_EXAMPLES]}; evaluate on held-out stimuli only")


# --------------------------------------------------------------------------------------------- evaluation sets

def _sorted_ids(ids) -> list[str]:
    """Stimulus ids (str) sorted, numeric ids by value."""
    return sorted(ids, key=lambda v: (len(v), v) if v.lstrip("-").isdigit() else (np.inf, v))


def shared_flagged(store) -> set[str]:
    """Stimuli (str) flagged ``shared`` in a store's trial table: NSD's shared test images, BOLD5000's repeated
    set, THINGS-EEG2's test images (docs/store.md)."""
    t = store.trials
    return set(map(str, t.loc[t["shared"].astype(bool), "stimulus"].tolist()))


def evaluation_stimuli(stores, caches, store_paths, eval_stimuli=None, where: str = "evaluation stimuli",
                       minimum: int = 3) -> list[str]:
    """The stimuli an evaluation of ``caches`` against ``stores`` runs on, checked to be held out.

    Default: the stimuli flagged ``shared`` in every store (NSD: the shared test images; BOLD5000: the repeated
    set; THINGS-EEG2: the test images, which are all an EEG store holds unless its training part was ingested
    too), that every feature cache has. With ``eval_stimuli`` (a file of ids, one per line, or a sequence): those
    ids, each of which must be in every store and every cache. Then :func:`check_disjoint` against every cache's
    training stimuli.

    Parameters
    ----------
    stores : list of opened voxel or EEG stores (``.trials``)
    caches : list of opened feature caches (``.stimulus_ids``, ``.training_stimuli``, ``.path``)
    store_paths : list of paths, for messages
    eval_stimuli : path or sequence, optional
    where : str, what is evaluated (for messages)
    minimum : int, fewest stimuli the evaluation needs

    Returns
    -------
    list of str
        Sorted (numeric ids by value).

    Raises
    ------
    InputError
        Fewer than ``minimum`` stimuli, ids of the user's list missing from a store or cache, or an overlap with a
        cache's training stimuli.
    """
    in_stores = None
    for s in stores:
        ids = set(map(str, s.trials["stimulus"].tolist()))
        in_stores = ids if in_stores is None else in_stores & ids
    in_stores = in_stores or set()
    in_caches = set(in_stores)
    for c in caches:
        in_caches &= set(map(str, c.stimulus_ids.tolist()))
    first = store_paths[0] if len(store_paths) else "stores"
    if eval_stimuli is not None:
        if isinstance(eval_stimuli, (str, Path)):
            from .stimuli import read_ids_file

            source, wanted = str(eval_stimuli), read_ids_file(eval_stimuli)
        else:
            source, wanted = "--eval-stimuli", [str(i) for i in eval_stimuli]
        wanted = list(dict.fromkeys(str(i) for i in wanted))
        absent = [i for i in wanted if i not in in_caches]
        if absent:
            raise InputError(source, f"{len(absent)} of the {len(wanted)} listed evaluation stimuli are not in every "
                                     f"store and feature cache, e.g. {absent[:_EXAMPLES]}")
        chosen = set(wanted)
        described = f"the {len(chosen)} listed stimuli"
    else:
        flagged = None
        for s in stores:
            flagged = shared_flagged(s) if flagged is None else flagged & shared_flagged(s)
        flagged = flagged or set()
        chosen = flagged & in_caches
        described = (f"{len(chosen)} stimuli flagged shared in every store and present in every feature cache "
                     f"({len(flagged)} shared by the stores, {len(in_stores)} in every store)")
    if len(chosen) < minimum:
        raise InputError(first, f"only {described}; the evaluation needs at least {minimum}")
    check_disjoint(chosen, caches, where)
    return _sorted_ids(chosen)
