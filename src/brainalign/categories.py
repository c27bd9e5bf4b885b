"""Stimulus -> category tables: which category each image belongs to (the unseen-category split, the decoding
evaluation, the object-dimension analysis).

A category table is a parquet file with columns ``stimulus`` (ids as the stores name them) and ``category``
(str). :func:`simulated_category_table` reads one from the simulator's ground truth; :func:`read_category_file`
reads a user's table (parquet, csv or tsv).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ._io import atomic_output
from .errors import InputError

#: datasets whose simulated images have ground-truth categories (``ground_truth/<dataset>_images.parquet``)
SIMULATED_DATASETS = ("nsd", "bold5000", "things_eeg2")
#: file suffixes :func:`read_category_file` understands
TABLE_SUFFIXES = (".parquet", ".csv", ".tsv")
COLUMNS = ["stimulus", "category"]


def _read_truth(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(path, "simulator ground truth missing (run `brainalign simulate` first)")
    table = pd.read_parquet(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks columns {missing}")
    return table[columns]


def simulated_category_table(simulated_dir, dataset: str, unseen: bool = False) -> pd.DataFrame:
    """Stimulus -> category table of a simulated dataset's images, from the simulator's ground truth.

    Parameters
    ----------
    simulated_dir : path-like
        Output folder of ``brainalign simulate`` (docs/simulator.md).
    dataset : {"nsd", "bold5000", "things_eeg2"}
        Whose images: ``stimulus`` as that dataset's stores name them (NSD: int nsdId; others: file names).
    unseen : bool
        Also the simulator's unseen images (ids: paths relative to the unseen-image folder, as the folder
        image set names them); all ids are then strings.

    Returns
    -------
    pandas.DataFrame (n_images, 2)
        Columns ``stimulus``, ``category`` (str).

    Raises
    ------
    InputError
        If the ground-truth table is missing or lacks the columns.
    """
    if dataset not in SIMULATED_DATASETS:
        raise InputError("--dataset",
                         f"no simulated categories for {dataset!r} (one of {', '.join(SIMULATED_DATASETS)})")
    truth = Path(simulated_dir) / "ground_truth"
    parts = [_read_truth(truth / f"{dataset}_images.parquet", COLUMNS)]
    if unseen:
        parts.append(_read_truth(truth / "unseen_images.parquet", ["path", "category"])
                     .rename(columns={"path": "stimulus"}))
    table = pd.concat(parts, ignore_index=True)
    return table.astype({"stimulus": str, "category": str} if unseen else {"category": str})


def read_category_file(path) -> pd.DataFrame:
    """A user's stimulus -> category table (parquet, csv or tsv with columns ``stimulus`` and ``category``).

    Returns
    -------
    pandas.DataFrame (n_stimuli, 2)
        Columns ``stimulus`` (str), ``category`` (str), in file order.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(path, f"category table must be one of {', '.join(TABLE_SUFFIXES)}")
    if not path.is_file():
        raise InputError(path, "category table not found")
    try:
        if suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str)
    except Exception as exc:  # corrupt / unparsable file
        raise InputError(path, f"cannot read the category table: {exc}") from exc
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"category table lacks columns {missing} (columns: {list(table.columns)})")
    return table[COLUMNS].astype(str)


def write_category_table(table: pd.DataFrame, out) -> None:
    """Write a category table (parquet) atomically."""
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
