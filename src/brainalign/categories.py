"""Stimulus -> category tables: which category each image belongs to (the unseen-category split, the decoding
evaluation, the object-dimension analysis).

The canonical table is a parquet file with columns ``stimulus`` (ids as the stores name them; unseen images by
their path relative to the unseen-image folder) and ``category`` (str). :func:`simulated_category_table` reads
one from the simulator's ground truth; :func:`read_category_file` reads a user's table (parquet, csv or tsv) and
:func:`check_category_table` checks it against the images a run uses. :func:`check_configured_categories` is the
same check on a pipeline config, run when the config is validated (``brainalign check-config``, the Snakefile's
start), so a bad table stops a run before any job starts (docs/encoding.md, "Category tables").
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ._io import atomic_output
from .errors import InputError

#: datasets whose simulated images have ground-truth categories (``ground_truth/<dataset>_images.parquet``)
SIMULATED_DATASETS = ("nsd", "bold5000", "things_eeg2")
#: file suffixes :func:`read_category_file` understands
TABLE_SUFFIXES = (".parquet", ".csv", ".tsv")
COLUMNS = ["stimulus", "category"]
#: the fewest categories any use of a table can work with (a split or a classifier needs two)
MIN_CATEGORIES = 2


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
    """A user's stimulus -> category table: parquet, csv or tsv with columns ``stimulus`` and ``category``.

    Text tables are read as text (ids such as ``0042`` keep their zeros), with surrounding white space
    stripped and a spreadsheet's byte-order mark ignored; other columns are allowed and dropped.

    Returns
    -------
    pandas.DataFrame (n_stimuli, 2)
        Columns ``stimulus`` (str), ``category`` (str), in file order.

    Raises
    ------
    InputError
        Naming the file: unknown suffix, missing or unreadable file, missing columns, empty cells, or a
        stimulus listed twice.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(path, f"category table must be one of {', '.join(TABLE_SUFFIXES)} "
                               f"(columns stimulus, category), not {path.suffix or 'a file without suffix'}")
    if not path.is_file():
        raise InputError(path, "category table not found")
    try:
        if suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                                na_values=[""], encoding="utf-8-sig", skipinitialspace=True)
    except Exception as exc:  # corrupt / unparsable file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot read the category table as {suffix[1:]}: {reason}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        hint = " (a tsv read as csv?)" if suffix == ".csv" and len(table.columns) == 1 else ""
        raise InputError(path, f"category table lacks columns {missing} (columns: {list(table.columns)}){hint}")
    table = table[COLUMNS]
    empty = table.isna().any(axis=1)
    if empty.any():
        row = int(empty.to_numpy().nonzero()[0][0])
        raise InputError(path, f"{int(empty.sum())} row(s) with an empty stimulus or category (first: data row "
                               f"{row + 1})")
    table = table.astype(str).apply(lambda column: column.str.strip())
    twice = table["stimulus"].duplicated(keep=False)
    if twice.any():
        examples = sorted(table.loc[twice, "stimulus"].unique())
        raise InputError(path, f"{len(examples)} stimuli are listed more than once, e.g. {examples[:3]}")
    return table.reset_index(drop=True)


def _examples(ids, n=3) -> str:
    ids = sorted(ids, key=str)
    return ", ".join(repr(str(i)) for i in ids[:n]) + (", ..." if len(ids) > n else "")


def check_category_table(table: pd.DataFrame, path, *, stimuli, unseen=None, unseen_folder=None,
                         min_images: int = 1, min_categories: int = MIN_CATEGORIES) -> dict:
    """Check a stimulus -> category table against the images a run uses.

    Parameters
    ----------
    table : pandas.DataFrame (n_rows, 2)
        From :func:`read_category_file`.
    path : path-like
        The table's file (named in errors).
    stimuli : sequence
        Every stimulus id of the dataset's design (compared as strings); each must have a category.
    unseen : sequence of str, optional
        The unseen images' ids (paths relative to their folder, as ``brainalign.stimuli.folder_images`` names
        them); each must have a category.
    unseen_folder : path-like, optional
        That folder (named in errors).
    min_images : int
        A category counts for decoding only with at least this many unseen images (the smallest number of
        synthetic training samples per class).
    min_categories : int
        Categories the dataset's stimuli must span (the unseen-categories split holds some out and trains
        on the rest).

    Returns
    -------
    dict
        ``n_stimuli``, ``n_unseen``, ``dataset_categories`` (category -> images), ``decoding_categories``
        (categories with at least ``min_images`` unseen images that the dataset's stimuli also have).

    Raises
    ------
    InputError
        Naming ``path``: dataset stimuli or unseen images without a category, too few categories among the
        dataset's stimuli, or fewer than two categories with enough unseen images.
    """
    category = dict(zip(table["stimulus"].astype(str), table["category"].astype(str)))
    stimuli = [str(s) for s in stimuli]
    missing = [s for s in stimuli if s not in category]
    if missing:
        raise InputError(path, f"{len(missing)} of the dataset's {len(stimuli)} stimuli have no row "
                               f"(e.g. {_examples(missing)}); list every image of the design")
    counts = pd.Series([category[s] for s in stimuli], dtype=object).value_counts()
    if len(counts) < min_categories:
        noun = "category" if len(counts) == 1 else "categories"
        raise InputError(path, f"the dataset's stimuli fall into {len(counts)} {noun} "
                               f"({', '.join(map(str, counts.index))}); at least {min_categories} are needed")
    summary = {"n_stimuli": len(stimuli), "n_unseen": 0, "dataset_categories": counts.to_dict(),
               "decoding_categories": []}
    if unseen is None:
        return summary
    unseen = [str(u) for u in unseen]
    where = f" of {unseen_folder}" if unseen_folder is not None else ""
    missing = [u for u in unseen if u not in category]
    if missing:
        by_name = {Path(s).name for s in category}
        hint = (" (the table names them by file name; write the path relative to the folder)"
                if any(Path(u).name in by_name for u in missing) else "")
        raise InputError(path, f"{len(missing)} of the {len(unseen)} unseen images{where} have no row "
                               f"(e.g. {_examples(missing)}); list them by their path relative to that folder{hint}")
    unseen_counts = pd.Series([category[u] for u in unseen], dtype=object).value_counts()
    usable = sorted(c for c, n in unseen_counts.items() if n >= min_images and c in counts.index)
    if len(usable) < MIN_CATEGORIES:
        found = ", ".join(f"{c}: {n}" for c, n in unseen_counts.items())
        raise InputError(path, f"decoding needs at least {MIN_CATEGORIES} categories with >= {min_images} unseen "
                               f"images each that the dataset's stimuli also have; the unseen images{where} give "
                               f"{found or 'none'}")
    summary.update(n_unseen=len(unseen), decoding_categories=usable)
    return summary


def table_requirements(synthetic: dict, encoding: dict) -> dict:
    """``min_images`` and ``min_categories`` of :func:`check_category_table` for a pipeline config's
    ``synthetic`` and ``encoding`` sections (schema defaults filled in): the decoding verdict's synthetic samples
    per class (``synthetic.decoding_samples_per_class``, else the smallest of ``samples_per_class``), and the
    held-out categories of the unseen-categories split plus one to train on."""
    if synthetic.get("decoding_samples_per_class"):
        min_images = int(synthetic["decoding_samples_per_class"])
    else:
        min_images = int(min(synthetic.get("samples_per_class") or [1]))
    held_out = encoding.get("n_test_categories", 2) if "unseen-categories" in synthetic.get("splits", []) else 0
    return {"min_images": min_images, "min_categories": max(MIN_CATEGORIES, int(held_out) + 1)}


def check_configured_categories(config: dict, source: str = "config") -> dict | None:
    """Check ``synthetic.categories`` of a validated pipeline config before anything runs.

    Reads the table (csv, tsv or parquet) and, when the dataset root is real (``simulate.enabled: false``),
    checks it against every stimulus of the dataset's design (``brainalign.stimulus_lists``) and every image of
    ``synthetic.unseen_images`` (:func:`check_category_table`), and checks that the categories of the design's
    images make the ``synthetic.category_folds`` held-out sets the unseen-categories split asks for. With the
    simulator the roots do not exist yet; the ``categories`` job checks the table then.

    Returns
    -------
    dict or None
        :func:`check_category_table`'s summary; None without a table or when simulating.

    Raises
    ------
    InputError
        Naming the table (bad table) or the config key (missing unseen-image folder, too many category folds).
    """
    synthetic = config["synthetic"]
    if not synthetic.get("categories"):
        return None
    table_path = synthetic["categories"]
    table = read_category_file(table_path)
    if config["simulate"]["enabled"]:
        return None
    from .stimuli import folder_images
    from .stimulus_lists import stimulus_lists

    dataset = synthetic["dataset"]
    stimuli, _ = stimulus_lists(dataset, config["datasets"][dataset]["root"])
    unseen_folder = synthetic.get("unseen_images")
    unseen = None
    if unseen_folder:
        if not Path(unseen_folder).is_dir():
            raise InputError(f"{source}: synthetic.unseen_images", f"folder {unseen_folder!r} does not exist")
        unseen = folder_images(unseen_folder).ids
    summary = check_category_table(table, table_path, stimuli=stimuli, unseen=unseen, unseen_folder=unseen_folder,
                                   **table_requirements(synthetic, config["encoding"]))
    folds = synthetic.get("category_folds")
    if folds and "unseen-categories" in synthetic.get("splits", []):
        n_categories, held_out = len(summary["dataset_categories"]), config["encoding"].get("n_test_categories", 2)
        possible = math.comb(n_categories, held_out)
        if folds > possible:
            raise InputError(f"{source}: synthetic.category_folds",
                             f"{folds} folds, but the {n_categories} categories of the dataset's images in "
                             f"{table_path} make only {possible} sets of {held_out} held-out categories "
                             f"(encoding.n_test_categories)")
    return summary


def write_category_table(table: pd.DataFrame, out) -> None:
    """Write a category table (parquet) atomically."""
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
