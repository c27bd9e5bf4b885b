"""Per-image dimension scores for the object-dimension analysis (``brainalign rsa --dimensions``).

A dimension table has a ``stimulus`` column and either numeric columns (one per dimension, e.g. the
THINGS/SPoSE embedding of each image's concept) or a ``category`` column, which is one-hot expanded
into one 0/1 dimension per category (both may be present). Stimulus ids are compared as strings,
as everywhere in ``brainalign rsa``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

#: file suffixes :func:`read_dimension_scores` understands
TABLE_SUFFIXES = (".parquet", ".csv", ".tsv")


def read_dimension_scores(path) -> pd.DataFrame:
    """Read a dimension table into a numeric score matrix.

    Parameters
    ----------
    path : path-like
        ``.parquet``, ``.csv`` or ``.tsv`` with a ``stimulus`` column, plus numeric dimension
        columns and/or a ``category`` column (one-hot expanded; the category value names the dimension).

    Returns
    -------
    pandas.DataFrame (n_stimuli, n_dimensions), float64
        Index = stimulus ids as ``str`` (named ``stimulus``); columns = dimension names, one-hot
        categories (sorted) first, then the numeric columns in file order.

    Raises
    ------
    InputError
        Naming ``path``: unreadable or unknown format, no ``stimulus`` column, duplicate stimuli,
        non-numeric dimension columns, missing values, or no dimension at all.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(path, f"dimension table must be one of {', '.join(TABLE_SUFFIXES)}")
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype={"stimulus": str, "category": str})
    except FileNotFoundError:
        raise InputError(path, "dimension table not found") from None
    except Exception as exc:  # corrupt / unparsable file
        raise InputError(path, f"cannot read the dimension table: {exc}") from exc
    if "stimulus" not in df.columns:
        raise InputError(path, f"dimension table has no 'stimulus' column (columns: {list(df.columns)})")
    stim = df["stimulus"].astype(str)
    if stim.duplicated().any():
        raise InputError(path, f"duplicate stimuli, e.g. {stim[stim.duplicated()].iloc[0]!r}")
    parts = []
    if "category" in df.columns:
        cat = df["category"]
        if cat.isna().any():
            raise InputError(path, "missing values in the 'category' column")
        cat = cat.astype(str)
        parts.append(pd.get_dummies(cat, dtype=np.float64).reindex(columns=sorted(cat.unique())))
    numeric = df.drop(columns=[c for c in ("stimulus", "category") if c in df.columns])
    bad = [c for c in numeric.columns if not pd.api.types.is_numeric_dtype(numeric[c].dtype)]
    if bad:
        raise InputError(path, f"dimension columns must be numeric; not numeric: {bad}")
    numeric = numeric.astype(np.float64)
    if len(numeric.columns) and not np.isfinite(numeric.to_numpy()).all():
        raise InputError(path, "missing or non-finite values in the dimension columns")
    parts.append(numeric)
    scores = pd.concat(parts, axis=1)
    if scores.shape[1] == 0:
        raise InputError(path, "no dimensions: give numeric columns and/or a 'category' column")
    names = [str(c) for c in scores.columns]
    if len(set(names)) != len(names):
        raise InputError(path, f"dimension names collide (a category named like a column?): {names}")
    scores.columns = names
    scores.index = pd.Index(stim.to_numpy(), name="stimulus")
    return scores
